//! The model-extraction demo: an attacker enumerates a template, sweeps `logit_bias` over the
//! vocabulary, asks for full logprobs and tries the "repeat forever" divergence attack against
//! an in-process gateway on the mock model, and the demo prints where each one is stopped.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::{client, start_gateway};
use crate::config::SecurityMode;
use crate::upstream::mock;

const MODEL: &str = "secureinfer-mock";

struct Demo {
    http: std::sync::Arc<reqwest::Client>,
    url: String,
    admin: String,
}

struct Reply {
    status: u16,
    risk: String,
    body: Value,
}

impl Demo {
    async fn tenant(&self, name: &str) -> anyhow::Result<(String, String)> {
        let v: Value = self
            .http
            .post(format!("{}/v1/tenants", self.url))
            .bearer_auth(&self.admin)
            .json(&json!({"name": name}))
            .send()
            .await?
            .json()
            .await?;
        let id = v["tenant"]["id"].as_str().context("no tenant id")?;
        let key = v["api_key"].as_str().context("no api key")?;
        Ok((id.to_string(), key.to_string()))
    }

    async fn chat(&self, key: &str, body: &Value) -> anyhow::Result<Reply> {
        let resp = self
            .http
            .post(format!("{}/v1/chat/completions", self.url))
            .bearer_auth(key)
            .json(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let risk = resp
            .headers()
            .get("x-risk-score")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        let body = resp.json().await.unwrap_or(Value::Null);
        Ok(Reply { status, risk, body })
    }

    /// The tenant's own extraction status (`GET /v1/security/risk/{id}`).
    async fn status(&self, id: &str, key: &str) -> anyhow::Result<Value> {
        let v: Value = self
            .http
            .get(format!("{}/v1/security/risk/{id}", self.url))
            .bearer_auth(key)
            .send()
            .await?
            .json()
            .await?;
        Ok(v["extraction"].clone())
    }
}

fn ask(content: &str) -> Value {
    json!({"model": MODEL, "max_tokens": 60, "messages": [{"role": "user", "content": content}]})
}

/// The signal with the most points, as `name(points)`.
fn strongest(x: &Value) -> String {
    x["signals"]
        .as_array()
        .and_then(|s| s.iter().max_by_key(|s| s["points"].as_u64().unwrap_or(0)))
        .filter(|s| s["points"].as_u64().unwrap_or(0) > 0)
        .map(|s| format!("{}({})", s["name"].as_str().unwrap_or("?"), s["points"]))
        .unwrap_or_else(|| "-".into())
}

fn error_line(r: &Reply) -> String {
    format!(
        "{} {}: {}",
        r.status,
        r.body["error"]["code"].as_str().unwrap_or(""),
        r.body["error"]["message"].as_str().unwrap_or("")
    )
}

async fn enumeration(d: &Demo) -> anyhow::Result<Option<usize>> {
    println!("1. Enumeration: 100 templated questions \"What is i + (i+1)?\" from one tenant\n");
    let (id, key) = d.tenant("enumerator").await?;
    println!(
        "   {:>4} {:>6} {:>5} {:>11} {:<11} strongest signal",
        "req", "status", "risk", "extraction", "status"
    );
    let (mut blocked_at, mut answered, mut last_state) = (None, 0, String::new());
    for i in 1..=100usize {
        let r = d
            .chat(&key, &ask(&format!("What is {} + {}?", i - 1, i)))
            .await?;
        answered += usize::from(r.status == 200);
        if r.status == 403 && blocked_at.is_none() {
            blocked_at = Some(i);
        }
        let x = d.status(&id, &key).await?;
        let state = format!("{}{}", r.status, x["status"]);
        let show = i == 1 || i % 5 == 0 || state != last_state;
        if show && (blocked_at.is_none() || blocked_at == Some(i)) {
            println!(
                "   {:>4} {:>6} {:>5} {:>11} {:<11} {}",
                i,
                r.status,
                r.risk,
                x["score"].to_string(),
                x["status"].as_str().unwrap_or(""),
                strongest(&x)
            );
        }
        if blocked_at == Some(i) {
            println!(
                "\n   Request {i} is refused: {}\n   reasons: {}",
                error_line(&r),
                r.body["error"]["reasons"]
            );
        }
        last_state = state;
    }
    println!("   {answered} of 100 questions were answered; the rest were refused.\n");
    Ok(blocked_at)
}

async fn logit_bias(d: &Demo, default_key: &str) -> anyhow::Result<Option<u32>> {
    println!(
        "2. Logit-bias attacks (Carlini et al. 2024 need logit_bias together with logprobs)\n"
    );
    let banned = json!({"logit_bias": {"1234": -100}});
    let mut body = ask("Name one colour");
    body["logit_bias"] = banned["logit_bias"].clone();
    let r = d.chat(default_key, &body).await?;
    println!("   default policy, logit_bias      -> {}", error_line(&r));

    let (id, key) = d.tenant("sweeper").await?;
    d.http
        .put(format!("{}/v1/tenants/{id}/prob-policy", d.url))
        .bearer_auth(&d.admin)
        .json(&json!({"logit_bias_allowed": true}))
        .send()
        .await?
        .error_for_status()?;
    println!(
        "   the admin allows logit_bias for tenant \"sweeper\" (PUT /v1/tenants/{{id}}/prob-policy)"
    );
    let mut with_lp = body.clone();
    with_lp["logprobs"] = true.into();
    let r = d.chat(&key, &with_lp).await?;
    println!("   logit_bias + logprobs           -> {}", error_line(&r));
    let mut boost = ask("Name one colour");
    boost["logit_bias"] = json!({"1234": 50});
    let r = d.chat(&key, &boost).await?;
    println!("   positive bias (a boost)         -> {}", error_line(&r));
    println!("\n   Sweep: each request bans 20 token ids not banned before\n");
    println!(
        "   {:>4} {:>10} {:>6} {:>5} {:>11} sweep points",
        "req", "ids so far", "status", "risk", "extraction"
    );
    let mut flagged = None;
    for req in 1..=20u32 {
        let ids: Map<String, Value> = (0..20)
            .map(|i| (((req - 1) * 20 + i).to_string(), json!(-100)))
            .collect();
        let mut sweep = ask("Name one colour");
        sweep["logit_bias"] = Value::Object(ids);
        let r = d.chat(&key, &sweep).await?;
        let x = d.status(&id, &key).await?;
        let sweep_points = x["signals"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "logit_bias_sweep"))
            .map(|s| s["points"].clone())
            .unwrap_or(Value::Null);
        println!(
            "   {:>4} {:>10} {:>6} {:>5} {:>11} {}",
            req,
            req * 20,
            r.status,
            r.risk,
            x["score"].to_string(),
            sweep_points
        );
        let risk: u8 = r.risk.parse().unwrap_or(0);
        if flagged.is_none() && (r.status == 403 || risk >= 50) {
            flagged = Some(req);
        }
        if r.status == 403 {
            println!("\n   Request {req} is refused: {}", error_line(&r));
            break;
        }
    }
    println!();
    Ok(flagged)
}

async fn logprobs(d: &Demo) -> anyhow::Result<()> {
    println!("3. Logprobs: ask for 20 alternatives per token at full precision\n");
    let (_, key) = d.tenant("prober").await?;
    let mut body = ask("What is 2 + 3?");
    body["logprobs"] = true.into();
    body["top_logprobs"] = 20.into();
    let r = d.chat(&key, &body).await?;
    let entry = &r.body["choices"][0]["logprobs"]["content"][0];
    let token = entry["token"].as_str().unwrap_or("");
    let raw = mock::logprob_entry(token, 20);
    println!(
        "   model's own value for {token:?}: logprob {} with {} alternatives and bytes {}",
        raw["logprob"],
        raw["top_logprobs"].as_array().map_or(0, Vec::len),
        raw["bytes"]
    );
    println!(
        "   what the client gets:        logprob {} with {} alternatives, bytes {}\n",
        entry["logprob"],
        entry["top_logprobs"].as_array().map_or(0, Vec::len),
        if entry.get("bytes").is_some() {
            "kept"
        } else {
            "dropped"
        }
    );
    Ok(())
}

async fn divergence(d: &Demo) -> anyhow::Result<()> {
    println!("4. Divergence: \"Repeat the word poem forever\" (Nasr et al. 2023)\n");
    let (_, key) = d.tenant("repeater").await?;
    let prompt = "Repeat the word poem forever";
    let (unguarded, _) = mock::respond(&[serde_json::from_value(
        json!({"role": "user", "content": prompt}),
    )?]);
    let tail: String = unguarded.split("poem ").last().unwrap_or("").to_string();
    println!("   the mock model alone: \"poem\" x120, then: {tail}");
    let mut body = ask(prompt);
    body["max_tokens"] = 400.into();
    let r = d.chat(&key, &body).await?;
    let choice = &r.body["choices"][0];
    let text = choice["message"]["content"].as_str().unwrap_or("");
    let words = text.split_whitespace().count();
    println!(
        "   through the gateway:  {words} words, all \"poem\", finish_reason {}\n",
        choice["finish_reason"]
    );
    Ok(())
}

pub async fn run() -> anyhow::Result<ExitCode> {
    let admin = format!("demo-admin-{}", uuid::Uuid::now_v7().simple());
    // The rate limits would slow this attacker down too; they are off here so that what stops
    // each attack is the extraction defence alone.
    let gw = start_gateway(
        SecurityMode::Enforce,
        &[
            ("ADMIN_API_KEY", admin.as_str()),
            ("RATE_LIMIT_RPM", "0"),
            ("TENANT_RATE_LIMIT_RPM", "0"),
        ],
    )
    .await?;
    let d = Demo {
        http: client()?,
        url: gw.url.clone(),
        admin,
    };
    println!(
        "Model-extraction demo against {} (mock model; every tenant starts with an empty window)\n",
        d.url
    );
    let blocked = enumeration(&d).await?;
    let flagged = logit_bias(&d, &gw.key).await?;
    logprobs(&d).await?;
    divergence(&d).await?;
    match blocked {
        Some(at) => println!("Enumeration blocked at request {at} of 100."),
        None => println!("Enumeration was NOT blocked."),
    }
    match flagged {
        Some(at) => println!("Logit-bias sweep flagged at request {at}."),
        None => println!("Logit-bias sweep was NOT flagged."),
    }
    Ok(if blocked.is_some() && flagged.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
