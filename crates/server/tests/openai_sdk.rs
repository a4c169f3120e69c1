#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The official OpenAI Python SDK against the gateway, unchanged: it must get answers,
//! stream text, and raise the right exception class for each error status.
//!
//! Needs `python3` with the `openai` package (`python3 -m pip install openai`); without it
//! the test prints why it is skipped and passes.

mod common;

use std::time::Duration;

const SCRIPT: &str = r#"
import sys
try:
    import openai
except ImportError as e:
    print(f"SKIP: cannot import openai ({e})")
    sys.exit(3)

base, key, model = sys.argv[1], sys.argv[2], sys.argv[3]
client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
question = [{"role": "user", "content": "What is 2 + 3?"}]

# Non-streaming, with typed fields.
r = client.chat.completions.create(model=model, messages=question)
assert r.choices[0].message.content == "2 + 3 = 5.", r
assert r.choices[0].finish_reason == "stop", r
assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r

# Raw access: the gateway's headers reach SDK users.
raw = client.chat.completions.with_raw_response.create(model=model, messages=question)
assert raw.headers.get("x-request-id"), dict(raw.headers)
assert raw.headers.get("x-risk-score") is not None, dict(raw.headers)

# Streaming, collecting text; usage arrives in a final chunk when asked.
text, usage = "", None
stream = client.chat.completions.create(
    model=model, messages=question, stream=True, stream_options={"include_usage": True})
for chunk in stream:
    if chunk.choices:
        text += chunk.choices[0].delta.content or ""
    elif chunk.usage is not None:
        usage = chunk.usage
assert text == "2 + 3 = 5.", repr(text)
assert usage is not None and usage.completion_tokens > 0, usage

# Models.
ids = [m.id for m in client.models.list()]
assert ids == [model], ids

def expect(exc, status, call):
    try:
        call()
    except exc as e:
        assert e.status_code == status, (e.status_code, e)
        return e
    raise AssertionError(f"no {exc.__name__} raised")

# Wrong key -> AuthenticationError (401).
bad = openai.OpenAI(base_url=base + "/v1", api_key="sk-si-0000000000000000-" + "0" * 64, max_retries=0)
expect(openai.AuthenticationError, 401, lambda: bad.chat.completions.create(model=model, messages=question))

# Too large a body -> APIStatusError with 413.
huge = [{"role": "user", "content": "x" * 5000}]
e = expect(openai.APIStatusError, 413, lambda: client.chat.completions.create(model=model, messages=huge))
assert e.code == "request_too_large", e.code

# Invalid request -> BadRequestError naming the parameter.
e = expect(openai.BadRequestError, 400,
           lambda: client.chat.completions.create(model=model, messages=question, max_tokens=10**6))
assert e.param == "max_tokens", e.param
e = expect(openai.BadRequestError, 400,
           lambda: client.chat.completions.create(model=model, messages=[{"role": "wizard", "content": "hi"}]))
assert e.param == "messages[0].role", e.param

# Unknown model -> NotFoundError.
e = expect(openai.NotFoundError, 404, lambda: client.chat.completions.create(model="gpt-4o", messages=question))
assert e.code == "model_not_found", e.code

print("OK")
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_sdk_works_unchanged() {
    let gw = common::gateway(&[("MAX_BODY_BYTES", "4096")]).await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("sdk_check.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .args([gw.url.as_str(), gw.key.as_str(), common::MODEL])
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(120), run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => {
            eprintln!(
                "SKIPPED official_openai_python_sdk_works_unchanged: cannot run python3: {e}"
            );
            return;
        }
        Err(_) => panic!("the SDK script did not finish within 120 s"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) && stdout.starts_with("SKIP") {
        eprintln!(
            "SKIPPED official_openai_python_sdk_works_unchanged: {} \
             (install it with: python3 -m pip install openai)",
            stdout.trim()
        );
        return;
    }
    assert!(
        out.status.success() && stdout.trim_end().ends_with("OK"),
        "SDK script failed ({:?})\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
}
