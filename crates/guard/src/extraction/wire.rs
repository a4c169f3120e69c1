//! A compact byte encoding of [`QueryFeatures`], so replicas can share a tenant's query log
//! (in Redis) and rebuild identical windows from it. The encoding holds hashes and counts,
//! never prompt text.
//!
//! Layout (little endian): version `1` (u8), band count (u8), band keys (u64 each), signature
//! (`NUM_HASHES` bytes), template (u64), template slots (u16), wrapper flag (u8) and value
//! (u64), words (u32), probe bits (u8), single turn (u8).

use super::config::{MAX_BANDS, NUM_HASHES};
use super::features::QueryFeatures;
use super::probes::ProbeSet;

const VERSION: u8 = 1;

impl QueryFeatures {
    pub fn to_bytes(&self) -> Vec<u8> {
        let bands = self.band_keys.len().min(MAX_BANDS);
        let mut out = Vec::with_capacity(2 + 8 * bands + NUM_HASHES + 8 + 2 + 9 + 4 + 2);
        out.push(VERSION);
        out.push(bands as u8);
        for k in &self.band_keys[..bands] {
            out.extend_from_slice(&k.to_le_bytes());
        }
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.template.to_le_bytes());
        out.extend_from_slice(&self.template_slots.to_le_bytes());
        out.push(u8::from(self.wrapper.is_some()));
        out.extend_from_slice(&self.wrapper.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&self.words.to_le_bytes());
        out.push(self.probes.bits());
        out.push(u8::from(self.single_turn));
        out
    }

    /// `None` for anything that is not exactly one encoded entry of this version.
    pub fn from_bytes(bytes: &[u8]) -> Option<QueryFeatures> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return None;
        }
        let bands = usize::from(r.u8()?);
        if bands > MAX_BANDS {
            return None;
        }
        let band_keys = (0..bands).map(|_| r.u64()).collect::<Option<Vec<_>>>()?;
        let signature: [u8; NUM_HASHES] = r.take(NUM_HASHES)?.try_into().ok()?;
        let template = r.u64()?;
        let template_slots = u16::from_le_bytes(r.take(2)?.try_into().ok()?);
        let has_wrapper = r.u8()? != 0;
        let wrapper = r.u64()?;
        let words = u32::from_le_bytes(r.take(4)?.try_into().ok()?);
        let probes = ProbeSet::from_bits(r.u8()?);
        let single_turn = r.u8()? != 0;
        if !r.0.is_empty() {
            return None;
        }
        Some(QueryFeatures {
            band_keys,
            signature,
            template,
            template_slots,
            wrapper: has_wrapper.then_some(wrapper),
            words,
            probes,
            single_turn,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}
