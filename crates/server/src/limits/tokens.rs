//! Counting tokens before the model does, to reserve them against a token budget.
//!
//! The count uses OpenAI's `cl100k_base` BPE (tiktoken-compatible, shipped inside the
//! `tiktoken-rs` crate, nothing downloaded) with the chat framing of OpenAI's cookbook: 3 tokens
//! per message, 1 more for a `name`, 3 to prime the reply. For other model families it is an
//! estimate of the right size; the reservation is reconciled with the usage the model server
//! reports, so the budget ends up charged with real figures either way.

use tiktoken_rs::CoreBPE;

use crate::openai::Message;

const PER_MESSAGE: u64 = 3;
const PER_NAME: u64 = 1;
const REPLY_PRIMING: u64 = 3;

fn bpe() -> &'static CoreBPE {
    tiktoken_rs::cl100k_base_singleton()
}

/// Loads the vocabulary now (about 100k entries) rather than on the first request.
pub fn warm_up() {
    let _ = bpe().count_ordinary("warm up");
}

/// Tokens of a piece of text.
pub fn text_tokens(text: &str) -> u64 {
    bpe().count_ordinary(text) as u64
}

/// Tokens the model reads for these messages.
pub fn prompt_tokens(messages: &[Message]) -> u64 {
    let mut total = REPLY_PRIMING;
    for m in messages {
        total += PER_MESSAGE + text_tokens(m.role.as_str()) + text_tokens(&m.text());
        if let Some(name) = &m.name {
            total += PER_NAME + text_tokens(name);
        }
        if let Some(calls) = &m.tool_calls {
            for call in calls {
                total += text_tokens(&call.to_string());
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: &str, content: &str) -> Message {
        serde_json::from_value(serde_json::json!({"role": role, "content": content})).unwrap()
    }

    #[test]
    fn counts_match_openai_cookbook() {
        // The cookbook's example conversation framing: "hello world" is 2 tokens in cl100k.
        assert_eq!(text_tokens("hello world"), 2);
        let msgs = [message("user", "hello world")];
        // 3 (priming) + 3 (message) + 1 ("user") + 2.
        assert_eq!(prompt_tokens(&msgs), 9);
    }

    #[test]
    fn grows_with_the_prompt() {
        let short = prompt_tokens(&[message("user", "hi")]);
        let long = prompt_tokens(&[message("user", &"lorem ipsum dolor ".repeat(100))]);
        assert!(long > short + 250, "{short} {long}");
    }
}
