//! Streamed answers: every `chat.completion.chunk` from the upstream passes through here before
//! it reaches the client.
//!
//! Each choice's content (and each tool call's arguments) has its own [`StreamScanner`], which
//! holds back only the tail a pattern could still extend. A delta is re-emitted with the text
//! the scanner released; when a choice finishes, the held tail is flushed in a chunk placed
//! just before the one carrying `finish_reason`. Log-probability entries travel with their
//! text: an entry is released only once all of its token has been released, and dropped when
//! its token overlaps a redaction.

use std::collections::VecDeque;

use secureinfer_guard::output::{Finding, OutputGuard, RequestContext, StreamScanner, StreamStep};
use serde_json::{Map, Value, json};

use super::complete::{cuts, entry_spans, overlaps};
use super::record::{Field, FindingLog};

/// More choices than validation allows (`n` ≤ 8) means a misbehaving upstream.
const MAX_CHOICES: usize = 16;
/// Tool calls per choice that get their own scanner.
const MAX_TOOL_CALLS: usize = 64;
/// Header fields copied from the upstream's chunks into chunks this relay creates.
const HEADER_FIELDS: [&str; 5] = ["id", "object", "created", "model", "system_fingerprint"];

/// What to do with one upstream chunk.
#[derive(Debug)]
pub enum Relay {
    /// Send these chunks (possibly none), in order.
    Send(Vec<Value>),
    /// A block finding: stop the upstream, end the stream with `finish_chunks` and an error.
    Blocked { finish_chunks: Vec<Value> },
    /// The upstream sent something the guard cannot follow; fail closed.
    Failed(&'static str),
}

/// One scanned text field of one choice.
struct TextScan<'g> {
    scanner: StreamScanner<'g>,
    received: usize,
    /// Log-probability entries not yet released: (start, end, entry).
    pending: VecDeque<(usize, usize, Value)>,
    cuts: Vec<(usize, usize)>,
}

struct Released {
    text: String,
    logprobs: Vec<Value>,
    findings: Vec<Finding>,
    blocked: bool,
}

impl<'g> TextScan<'g> {
    fn new(guard: &'g OutputGuard, ctx: &RequestContext) -> Self {
        TextScan {
            scanner: guard.stream(ctx.clone()),
            received: 0,
            pending: VecDeque::new(),
            cuts: Vec::new(),
        }
    }

    fn queue(&mut self, text_len: usize, entries: Vec<Value>) {
        let at = self.received;
        match entry_spans(&entries, at, text_len) {
            Some(spans) => {
                for ((s, e), v) in spans.into_iter().zip(entries) {
                    self.pending.push_back((s, e, v));
                }
            }
            // Tokens that do not add up to the text: each entry covers the whole delta.
            None => {
                for v in entries {
                    self.pending.push_back((at, at + text_len, v));
                }
            }
        }
    }

    fn settle(&mut self, step: StreamStep, emitted: usize) -> Released {
        self.cuts.extend(cuts(&step.findings));
        let mut logprobs = Vec::new();
        while let Some(&(s, e, _)) = self.pending.front() {
            if e > emitted {
                break;
            }
            if let Some((_, _, v)) = self.pending.pop_front()
                && !overlaps(&self.cuts, s, e)
            {
                logprobs.push(v);
            }
        }
        // Cuts entirely before every pending entry can no longer matter.
        let horizon = self.pending.front().map_or(emitted, |p| p.0);
        self.cuts.retain(|&(_, e)| e > horizon);
        Released {
            text: step.text,
            logprobs,
            findings: step.findings,
            blocked: step.blocked,
        }
    }

    fn push(&mut self, text: &str, entries: Vec<Value>) -> Released {
        self.queue(text.len(), entries);
        self.received += text.len();
        let step = self.scanner.push(text);
        let emitted = self.received - self.scanner.held_back();
        self.settle(step, emitted)
    }

    fn finish(self) -> Released {
        let step = self.scanner.finish();
        Self::settle_final(step, self.received, self.pending, self.cuts)
    }

    fn settle_final(
        step: StreamStep,
        received: usize,
        pending: VecDeque<(usize, usize, Value)>,
        mut cut: Vec<(usize, usize)>,
    ) -> Released {
        cut.extend(cuts(&step.findings));
        let logprobs = pending
            .into_iter()
            .filter(|&(s, e, _)| e <= received && !overlaps(&cut, s, e))
            .map(|(_, _, v)| v)
            .collect();
        Released {
            text: step.text,
            logprobs,
            findings: step.findings,
            blocked: step.blocked,
        }
    }
}

struct ChoiceScan<'g> {
    index: u64,
    content: Option<TextScan<'g>>,
    tools: Vec<(u64, TextScan<'g>)>,
}

/// The per-response relay state. Borrows the guard and the request context, which the
/// relaying task owns.
pub struct StreamFilter<'g> {
    guard: &'g OutputGuard,
    ctx: &'g RequestContext,
    choices: Vec<ChoiceScan<'g>>,
    header: Map<String, Value>,
    /// Choice indices seen, for the `content_filter` chunks sent on a block.
    seen: Vec<u64>,
    pub log: FindingLog,
}

/// A flushed tail of one choice.
struct Tail {
    content: String,
    logprobs: Vec<Value>,
    tools: Vec<(u64, String)>,
}

impl Tail {
    fn is_empty(&self) -> bool {
        self.content.is_empty() && self.logprobs.is_empty() && self.tools.is_empty()
    }
}

impl<'g> StreamFilter<'g> {
    pub fn new(guard: &'g OutputGuard, ctx: &'g RequestContext) -> Self {
        StreamFilter {
            guard,
            ctx,
            choices: Vec::new(),
            header: Map::new(),
            seen: Vec::new(),
            log: FindingLog::default(),
        }
    }

    fn state(&mut self, index: u64) -> Option<&mut ChoiceScan<'g>> {
        if let Some(pos) = self.choices.iter().position(|c| c.index == index) {
            return self.choices.get_mut(pos);
        }
        if self.choices.len() >= MAX_CHOICES {
            return None;
        }
        if !self.seen.contains(&index) {
            self.seen.push(index);
        }
        self.choices.push(ChoiceScan {
            index,
            content: None,
            tools: Vec::new(),
        });
        self.choices.last_mut()
    }

    fn chunk(&self, index: u64, delta: Value, logprobs: Value, finish: Value) -> Value {
        let mut c = self.header.clone();
        c.insert("object".into(), json!("chat.completion.chunk"));
        c.insert(
            "choices".into(),
            json!([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]),
        );
        Value::Object(c)
    }

    fn tail_chunk(&self, index: u64, tail: Tail, finish: Value) -> Value {
        let mut delta = Map::new();
        if !tail.content.is_empty() {
            delta.insert("content".into(), Value::String(tail.content));
        }
        if !tail.tools.is_empty() {
            let calls: Vec<Value> = tail
                .tools
                .into_iter()
                .map(|(k, args)| json!({"index": k, "function": {"arguments": args}}))
                .collect();
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        let logprobs = if tail.logprobs.is_empty() {
            Value::Null
        } else {
            json!({"content": tail.logprobs})
        };
        self.chunk(index, Value::Object(delta), logprobs, finish)
    }

    /// Flushes every scanner of a choice; `None` when that blocked.
    fn flush(&mut self, index: u64) -> Option<Tail> {
        let pos = self.choices.iter().position(|c| c.index == index)?;
        let state = self.choices.swap_remove(pos);
        let mut tail = Tail {
            content: String::new(),
            logprobs: Vec::new(),
            tools: Vec::new(),
        };
        if let Some(scan) = state.content {
            let r = scan.finish();
            self.log.add(index, Field::Content, &r.findings);
            if r.blocked {
                return None;
            }
            tail.content = r.text;
            tail.logprobs = r.logprobs;
        }
        for (k, scan) in state.tools {
            let r = scan.finish();
            self.log.add(index, Field::ToolArguments(k), &r.findings);
            if r.blocked {
                return None;
            }
            if !r.text.is_empty() {
                tail.tools.push((k, r.text));
            }
        }
        Some(tail)
    }

    fn blocked(&self) -> Relay {
        let indices = if self.seen.is_empty() {
            vec![0]
        } else {
            self.seen.clone()
        };
        let finish_chunks = indices
            .into_iter()
            .map(|i| self.chunk(i, json!({}), Value::Null, json!("content_filter")))
            .collect();
        Relay::Blocked { finish_chunks }
    }

    /// Filters one upstream chunk.
    pub fn on_chunk(&mut self, mut chunk: Value) -> Relay {
        for f in HEADER_FIELDS {
            if let Some(v) = chunk.get(f) {
                self.header.insert(f.into(), v.clone());
            }
        }
        let has_usage = chunk.get("usage").is_some_and(|u| !u.is_null());
        let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) else {
            return Relay::Send(vec![chunk]);
        };
        if choices.is_empty() {
            return Relay::Send(vec![chunk]);
        }
        let (guard, ctx) = (self.guard, self.ctx);
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let mut droppable = !has_usage;
        for (pos, choice) in choices.iter_mut().enumerate() {
            let index = choice
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(pos as u64);
            let Some(state) = self.state(index) else {
                return Relay::Failed("the upstream sent more choices than requested");
            };
            let entries = match choice.pointer_mut("/logprobs/content") {
                Some(Value::Array(a)) => Some(std::mem::take(a)),
                _ => None,
            };
            let had_logprobs = entries.is_some();
            let mut released = Vec::new();
            let mut emptied = false;
            let mut findings = Vec::new();
            let mut blocked = false;
            match choice.pointer_mut("/delta/content") {
                Some(Value::String(text)) => {
                    let scan = state
                        .content
                        .get_or_insert_with(|| TextScan::new(guard, ctx));
                    let r = scan.push(text, entries.unwrap_or_default());
                    emptied = !text.is_empty() && r.text.is_empty();
                    *text = r.text;
                    released = r.logprobs;
                    findings = r.findings;
                    blocked = r.blocked;
                }
                // Entries without text: they wait at the current position like any other.
                _ if had_logprobs => {
                    let scan = state
                        .content
                        .get_or_insert_with(|| TextScan::new(guard, ctx));
                    let r = scan.push("", entries.unwrap_or_default());
                    released = r.logprobs;
                }
                _ => {}
            }
            let mut tool_findings = Vec::new();
            let calls = choice
                .pointer_mut("/delta/tool_calls")
                .and_then(Value::as_array_mut);
            for (k, call) in calls.into_iter().flatten().enumerate() {
                let k = call
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(k as u64);
                let Some(Value::String(args)) = call.pointer_mut("/function/arguments") else {
                    continue;
                };
                let scan = match state.tools.iter().position(|(i, _)| *i == k) {
                    Some(p) => &mut state.tools[p].1,
                    None if state.tools.len() < MAX_TOOL_CALLS => {
                        state.tools.push((k, TextScan::new(guard, ctx)));
                        let last = state.tools.len() - 1;
                        &mut state.tools[last].1
                    }
                    None => return Relay::Failed("the upstream sent too many tool calls"),
                };
                let r = scan.push(args, Vec::new());
                *args = r.text;
                tool_findings.push((k, r.findings));
                blocked |= r.blocked;
            }
            self.log.add(index, Field::Content, &findings);
            for (k, f) in &tool_findings {
                self.log.add(index, Field::ToolArguments(*k), f);
            }
            if blocked {
                return self.blocked();
            }
            if had_logprobs {
                choice["logprobs"] = if released.is_empty() {
                    Value::Null
                } else {
                    json!({"content": released})
                };
            }
            let finish = choice.get("finish_reason").cloned().unwrap_or(Value::Null);
            let only_content = choice
                .get("delta")
                .and_then(Value::as_object)
                .is_some_and(|d| d.len() == 1 && d.contains_key("content"));
            droppable &= emptied && only_content && finish.is_null() && released.is_empty();
            if !finish.is_null() {
                let Some(tail) = self.flush(index) else {
                    return self.blocked();
                };
                if !tail.is_empty() {
                    let carries_text = choice.get("delta").is_some_and(|d| {
                        d.get("content")
                            .and_then(Value::as_str)
                            .is_some_and(|t| !t.is_empty())
                            || d.get("tool_calls").is_some()
                    });
                    if carries_text {
                        // The tail goes after this chunk's text, so the finish moves after it.
                        choice["finish_reason"] = Value::Null;
                        after.push((index, tail, finish));
                    } else {
                        // The usual case: an empty finishing chunk, sent as is after the tail.
                        before.push((index, tail));
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(1 + before.len() + after.len());
        for (index, tail) in before {
            out.push(self.tail_chunk(index, tail, Value::Null));
        }
        if !droppable {
            out.push(chunk);
        }
        for (index, tail, finish) in after {
            out.push(self.tail_chunk(index, tail, finish));
        }
        Relay::Send(out)
    }

    /// The upstream ended: flushes choices that never sent a `finish_reason`.
    pub fn end(&mut self) -> Relay {
        let indices: Vec<u64> = self.choices.iter().map(|c| c.index).collect();
        let mut out = Vec::new();
        for index in indices {
            let Some(tail) = self.flush(index) else {
                return self.blocked();
            };
            if !tail.is_empty() {
                out.push(self.tail_chunk(index, tail, Value::Null));
            }
        }
        Relay::Send(out)
    }
}
