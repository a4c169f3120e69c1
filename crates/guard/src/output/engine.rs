//! The scanning engine shared by `scan` and `StreamScanner`.
//!
//! Matches are resolved left to right: among all detectors, the match starting first wins (then
//! the longer one, then detector priority), the cursor jumps past it, repeat. Each detector's
//! next match is cached in absolute offsets, so a push re-probes only detectors whose answer was
//! pending or was overtaken by the cursor. A winner is committed only when it starts before every
//! pending position, which makes the streamed decisions identical to the one-shot ones.

use super::canary::CanaryMatcher;
use super::detectors::{Probe, floor_boundary};
use super::overlap::{OverlapTracker, RunEvent};
use super::{Action, Category, Finding, OutputGuard, RequestContext};

/// Already-emitted bytes kept in the buffer as left context for `\b` and validator look-behind.
const LEFT_CONTEXT: usize = 16;

#[derive(Clone, Copy)]
enum Slot {
    Stale(usize),
    Hit {
        pos: usize,
        start: usize,
        end: usize,
    },
    Pending(usize),
    Done,
}

pub(crate) struct Engine<'g> {
    guard: &'g OutputGuard,
    canary: Option<CanaryMatcher>,
    overlap: Option<OverlapTracker>,
    /// One per compiled detector, then one for the canary.
    slots: Vec<Slot>,
    events: Vec<RunEvent>,
}

impl<'g> Engine<'g> {
    pub(crate) fn new(guard: &'g OutputGuard, ctx: &RequestContext) -> Self {
        let policy = &guard.policy;
        let canary = ctx
            .canary
            .as_deref()
            .filter(|_| policy.action(Category::Canary) != Action::Off)
            .and_then(CanaryMatcher::new);
        let overlap = ctx
            .system_prompt
            .as_deref()
            .filter(|_| policy.action(Category::SystemPromptLeak) != Action::Off)
            .and_then(|s| OverlapTracker::new(s, policy.prompt_overlap_min_words));
        let slots = vec![Slot::Stale(0); guard.detectors.len() + 1];
        Self {
            guard,
            canary,
            overlap,
            slots,
            events: Vec::new(),
        }
    }

    fn category(&self, i: usize) -> Category {
        self.guard
            .detectors
            .get(i)
            .map_or(Category::Canary, |d| d.category)
    }

    /// Turns overlap events into findings; true when the policy blocks.
    fn drain_events(&mut self, findings: &mut Vec<Finding>) -> bool {
        let action = self.guard.policy.action(Category::SystemPromptLeak);
        let mut blocked = false;
        for ev in self.events.drain(..) {
            let (r, report) = match ev {
                RunEvent::Started(r) => (r, action == Action::Block),
                RunEvent::Ended(r) => (r, action == Action::Log),
            };
            if report && !blocked {
                let (start, end) = (r.start, r.end);
                findings.push(Finding {
                    category: Category::SystemPromptLeak,
                    action,
                    start,
                    end,
                });
                blocked = action == Action::Block;
            }
        }
        blocked
    }

    pub(crate) fn overlap_feed(
        &mut self,
        text: &str,
        base: usize,
        findings: &mut Vec<Finding>,
    ) -> bool {
        let Some(t) = self.overlap.as_mut() else {
            return false;
        };
        t.feed(text, base, &mut self.events);
        self.drain_events(findings)
    }

    pub(crate) fn overlap_finish(&mut self, findings: &mut Vec<Finding>) -> bool {
        let Some(t) = self.overlap.as_mut() else {
            return false;
        };
        t.finish(&mut self.events);
        self.drain_events(findings)
    }

    fn probe(&self, i: usize, buf: &str, base: usize, from: usize, fin: bool) -> Slot {
        let rel = from.saturating_sub(base).min(buf.len());
        let probe = match self.guard.detectors.get(i) {
            Some(d) => d.probe(
                buf,
                rel,
                fin,
                self.guard.policy.action(d.category) == Action::Block,
            ),
            None => match &self.canary {
                Some(c) => c.probe(buf, rel, fin),
                None => Probe::Done,
            },
        };
        match probe {
            Probe::Found { pos, start, end } => Slot::Hit {
                pos: base + pos,
                start: base + start,
                end: base + end,
            },
            Probe::Pending(p) => Slot::Pending(base + p),
            Probe::Done => Slot::Done,
        }
    }

    /// Resolves matches in `buf` (which starts at absolute offset `base`) from `cursor` on,
    /// appending emitted text to `out` and findings to `findings`. Returns true on block.
    pub(crate) fn advance(
        &mut self,
        buf: &str,
        base: usize,
        cursor: &mut usize,
        fin: bool,
        mut out: Option<&mut String>,
        findings: &mut Vec<Finding>,
    ) -> bool {
        let buf_end = base + buf.len();
        for s in &mut self.slots {
            if let Slot::Pending(p) = *s {
                *s = Slot::Stale(p);
            }
        }
        loop {
            let mut best: Option<(usize, usize, usize, usize)> = None;
            let mut pending = buf_end;
            for i in 0..self.slots.len() {
                let slot = match self.slots[i] {
                    Slot::Stale(p) => self.probe(i, buf, base, p.max(*cursor), fin),
                    Slot::Hit { pos, .. } | Slot::Pending(pos) if pos < *cursor => {
                        self.probe(i, buf, base, *cursor, fin)
                    }
                    s => s,
                };
                self.slots[i] = slot;
                match slot {
                    Slot::Hit { pos, start, end } => {
                        if best.is_none_or(|b| pos < b.1 || (pos == b.1 && end > b.3)) {
                            best = Some((i, pos, start, end));
                        }
                    }
                    Slot::Pending(p) => pending = pending.min(p),
                    Slot::Done | Slot::Stale(_) => {}
                }
            }
            let Some((i, pos, start, end)) = best.filter(|b| b.1 < pending) else {
                let upto = floor_boundary(buf, pending.max(*cursor) - base) + base;
                if let Some(o) = out.as_deref_mut() {
                    o.push_str(&buf[*cursor - base..upto - base]);
                }
                *cursor = upto;
                return false;
            };
            let _ = pos;
            let category = self.category(i);
            let action = self.guard.policy.action(category);
            findings.push(Finding {
                category,
                action,
                start,
                end,
            });
            let (keep_to, replacement) = match action {
                Action::Block => return true,
                Action::Redact => (start, category.redaction()),
                Action::Log | Action::Off => (end, ""),
            };
            if let Some(o) = out.as_deref_mut() {
                o.push_str(&buf[*cursor - base..keep_to - base]);
                o.push_str(replacement);
            }
            *cursor = end;
        }
    }
}

/// Output of one `push`/`finish`: text safe to send now (already redacted), new findings, and
/// whether the response is blocked (then `text` is empty and later steps emit nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamStep {
    pub text: String,
    pub findings: Vec<Finding>,
    pub blocked: bool,
}

/// Per-response streaming state. Holds back only the tail that a pattern could still extend.
pub struct StreamScanner<'g> {
    engine: Engine<'g>,
    buf: String,
    base: usize,
    cursor: usize,
    blocked: bool,
}

impl std::fmt::Debug for StreamScanner<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScanner")
            .field("emitted", &self.cursor)
            .field("held", &self.held_back())
            .field("blocked", &self.blocked)
            .finish()
    }
}

impl<'g> StreamScanner<'g> {
    pub(crate) fn new(guard: &'g OutputGuard, ctx: &RequestContext) -> Self {
        Self {
            engine: Engine::new(guard, ctx),
            buf: String::new(),
            base: 0,
            cursor: 0,
            blocked: false,
        }
    }

    /// Bytes received but not yet emitted (0 once blocked: nothing will be emitted).
    pub fn held_back(&self) -> usize {
        // A block clears the buffer without moving the cursor.
        (self.base + self.buf.len()).saturating_sub(self.cursor)
    }

    pub fn is_blocked(&self) -> bool {
        self.blocked
    }

    pub fn push(&mut self, chunk: &str) -> StreamStep {
        self.step(chunk, false)
    }

    /// Flushes the held-back tail at end of stream.
    pub fn finish(mut self) -> StreamStep {
        self.step("", true)
    }

    fn step(&mut self, chunk: &str, fin: bool) -> StreamStep {
        let mut step = StreamStep {
            blocked: self.blocked,
            ..StreamStep::default()
        };
        if self.blocked {
            return step;
        }
        let at = self.base + self.buf.len();
        let mut blocked = self.engine.overlap_feed(chunk, at, &mut step.findings);
        if fin {
            blocked |= self.engine.overlap_finish(&mut step.findings);
        }
        self.buf.push_str(chunk);
        if !blocked {
            let e = &mut self.engine;
            blocked = e.advance(
                &self.buf,
                self.base,
                &mut self.cursor,
                fin,
                Some(&mut step.text),
                &mut step.findings,
            );
        }
        if blocked {
            step.text.clear();
            self.buf = String::new();
            self.blocked = true;
            step.blocked = true;
            return step;
        }
        let keep = floor_boundary(
            &self.buf,
            (self.cursor - self.base).saturating_sub(LEFT_CONTEXT),
        );
        if keep > 0 {
            self.buf.drain(..keep);
            self.base += keep;
        }
        step
    }
}
