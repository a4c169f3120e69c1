//! Each detector on a positive sample: caught, redacted, and identical at every 2-chunk split
//! and on random multi-chunk splits.
// Tests may unwrap/panic: a failing assertion is the point.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "output_common.rs"]
mod output_common;

use output_common::{assert_all_two_splits, assert_equivalent};
use proptest::prelude::*;
use secureinfer_guard::output::{
    Action, Category, CategoryGroup, OutputGuard, OutputPolicy, RequestContext, make_canary,
};

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
const PEM: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MaKzyzM5lL0jO7x1\nq8Z2vR7xL1mN4pK9t3W5yU7iO9pA1sD3fG5hJ7kL9zX1cV3bN5mQ7wE9rT1yU3i\n-----END RSA PRIVATE KEY-----";

fn samples() -> Vec<(Category, String)> {
    let gh = format!("ghp_{}", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A");
    vec![
        (
            Category::Email,
            "Contact jane.doe@example.com for access.".into(),
        ),
        (Category::Phone, "Call +44 20 7946 0958 today.".into()),
        (Category::Phone, "Call (212) 555-0147 or later".into()),
        (Category::Phone, "US office: 212-555-0147.".into()),
        (
            Category::PaymentCard,
            "Card 4111 1111 1111 1111 exp 12/27".into(),
        ),
        (Category::PaymentCard, "mc 5555555555554444 ok".into()),
        (Category::PaymentCard, "amex 3782-822463-10005.".into()),
        (Category::Ssn, "SSN 123-45-6789 on file".into()),
        (
            Category::Iban,
            "Pay to DE89 3704 0044 0532 0130 00 please".into(),
        ),
        (Category::Iban, "IBAN: GB82WEST12345698765432".into()),
        (
            Category::AwsAccessKey,
            "aws_access_key_id=AKIAIOSFODNN7EXAMPLE\n".into(),
        ),
        (Category::GitHubToken, format!("export GH={gh} # token")),
        (
            Category::OpenAiKey,
            "client = OpenAI(key=\"sk-proj-abc123DEF456ghi789JKL012mno345\")".into(),
        ),
        (
            Category::SlackToken,
            "slack xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx".into(),
        ),
        (
            Category::GoogleApiKey,
            "maps AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe loaded".into(),
        ),
        (
            Category::StripeKey,
            "Stripe.api_key = sk_live_4eC39HqLyjWDarjtT1zdp7dc".into(),
        ),
        (
            Category::Jwt,
            format!("Authorization header {JWT} was sent"),
        ),
        (
            Category::GenericSecret,
            "db password = \"q8Z2vR7xL1mN4pK9t\" in config".into(),
        ),
        (
            Category::GenericSecret,
            "Authorization: Bearer 9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c".into(),
        ),
        (Category::PrivateKey, format!("here:\n{PEM}\ndone")),
        (Category::IpAddress, "server at 10.0.0.12 responded".into()),
        (
            Category::IpAddress,
            "v6 host 2001:db8::8a2e:370:7334 up".into(),
        ),
    ]
}

fn redact_all() -> OutputGuard {
    let mut p = OutputPolicy::default();
    for g in [
        CategoryGroup::Secret,
        CategoryGroup::Pii,
        CategoryGroup::Network,
        CategoryGroup::Leak,
    ] {
        p.set_group(g, Action::Redact);
    }
    OutputGuard::new(p).unwrap()
}

#[test]
fn each_sample_is_caught_and_redacted() {
    let guard = redact_all();
    let ctx = RequestContext::default();
    for (cat, text) in samples() {
        let r = guard.scan(&text, &ctx);
        assert!(
            r.findings.iter().any(|f| f.category == cat),
            "{cat:?} not found in {text:?}: {:?}",
            r.findings
        );
        assert!(r.text.contains(cat.redaction()), "{cat:?}: {}", r.text);
        assert!(!r.blocked);
    }
}

#[test]
fn redaction_keeps_surrounding_text() {
    let guard = redact_all();
    let r = guard.scan("mail jane.doe@example.com now", &RequestContext::default());
    assert_eq!(r.text, "mail [REDACTED:EMAIL] now");
    let r = guard.scan(
        "db password = \"q8Z2vR7xL1mN4pK9t\" ok",
        &RequestContext::default(),
    );
    assert_eq!(r.text, "db password = \"[REDACTED:SECRET]\" ok");
}

#[test]
fn every_two_chunk_split_matches_scan() {
    let guard = redact_all();
    let default_guard = OutputGuard::new(OutputPolicy::default()).unwrap();
    let ctx = RequestContext::default();
    for (_, text) in samples() {
        assert_all_two_splits(&guard, &ctx, &text);
        assert_all_two_splits(&default_guard, &ctx, &text);
    }
}

#[test]
fn defaults_block_private_keys_and_log_ips() {
    let guard = OutputGuard::new(OutputPolicy::default()).unwrap();
    let ctx = RequestContext::default();
    let text = format!("ok {PEM}");
    let r = guard.scan(&text, &ctx);
    assert!(r.blocked && r.text.is_empty());
    let r = guard.scan("ping 10.0.0.12 now", &ctx);
    assert_eq!(r.text, "ping 10.0.0.12 now");
    assert_eq!(r.findings[0].action, Action::Log);
}

#[test]
fn pem_block_is_blocked_before_its_end_arrives() {
    let guard = OutputGuard::new(OutputPolicy::default()).unwrap();
    let mut s = guard.stream(RequestContext::default());
    let first = s.push("sure: -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA");
    assert!(first.blocked);
    assert!(first.text.is_empty());
    assert_eq!(s.held_back(), 0, "nothing is pending once blocked");
    assert!(s.push("more").text.is_empty());
}

#[test]
fn unterminated_pem_is_redacted_up_to_bound() {
    let guard = redact_all();
    let text = format!("x -----BEGIN PRIVATE KEY-----\n{}", "A".repeat(20_000));
    let r = guard.scan(&text, &RequestContext::default());
    assert!(r.text.starts_with("x [REDACTED:PRIVATE_KEY]"));
    assert_equivalent(
        &guard,
        &RequestContext::default(),
        &[&text[..100], &text[100..17_000], &text[17_000..]],
    );
}

#[test]
fn canary_is_caught_plain_and_mangled() {
    let canary = make_canary([7u8; 16]);
    let body = canary.trim_start_matches("si-canary-").to_string();
    let spaced: String = body.chars().flat_map(|c| [c, ' ']).collect();
    let guard = OutputGuard::new(OutputPolicy::default()).unwrap();
    let redacting =
        OutputGuard::new(OutputPolicy::default().with(Category::Canary, Action::Redact)).unwrap();
    let ctx = RequestContext {
        canary: Some(canary.clone()),
        system_prompt: None,
    };
    for text in [
        format!("My instructions: {canary}."),
        format!("marker {}", canary.to_uppercase()),
        format!("spelled: {spaced}end"),
        format!(
            "z\u{200B}{}",
            body.chars()
                .map(|c| format!("{c}\u{200B}"))
                .collect::<String>()
        ),
    ] {
        assert!(guard.scan(&text, &ctx).blocked, "{text}");
        let r = redacting.scan(&text, &ctx);
        assert!(r.text.contains("[REDACTED:CANARY]"), "{}", r.text);
        assert_all_two_splits(&guard, &ctx, &text);
        assert_all_two_splits(&redacting, &ctx, &text);
    }
    assert!(
        !guard
            .scan("si-canary-aaaaaaaaaaaaaaaaaaaaaaaaaa", &ctx)
            .blocked
    );
}

#[test]
fn make_canary_is_unique_and_well_formed() {
    let a = make_canary([0u8; 16]);
    let b = make_canary([1u8; 16]);
    assert_ne!(a, b);
    assert_eq!(a.len(), "si-canary-".len() + 26);
    assert!(
        a.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn random_multi_chunk_splits(idx in 0usize..22, cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let guard = redact_all();
        let all = samples();
        let text = &all[idx % all.len()].1;
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        let mut at: Vec<usize> = cuts.iter().map(|c| bounds[c.index(bounds.len())]).collect();
        at.push(0);
        at.push(text.len());
        at.sort_unstable();
        at.dedup();
        let chunks: Vec<&str> = at.windows(2).map(|w| &text[w[0]..w[1]]).collect();
        assert_equivalent(&guard, &RequestContext::default(), &chunks);
    }
}

#[test]
fn validators_reject_near_misses() {
    let guard = redact_all();
    let ctx = RequestContext::default();
    for text in [
        "visa-like 4111 1111 1111 1112 fails Luhn",
        "luhn-valid but unknown issuer 9111111111111110",
        "mixed separators 4111-1111 1111-1111",
        "IBAN with bad check digits DE88 3704 0044 0532 0130 00",
        "IBAN of unknown country ZZ89 3704 0044 0532 0130 00",
        "SSN rules 000-12-3456 666-12-3456 912-12-3456 123-00-4567 123-45-0000 123-45 6789",
        "NANP 123-555-0147 and 212-155-0147 have invalid area or exchange codes",
        "bare digits 2125550147 are not a phone number",
        "version 1.2.3.4.5 and 300.1.1.1 are not addresses",
        "eyJub3RhIjoiand0In0.eyJzdWIiOiIxIn0.c2ln has no alg in its header",
        "password = aaaaaaaaaaaaaaaa1 has too little entropy",
        "token = process.env.GITHUB_TOKEN_VALUE is a reference",
        "AKIAIOSFODNN7EXAMPLEX is too long for an access key id",
        "sk-this-is-not-a-real-key-at-all has no digits",
    ] {
        let r = guard.scan(text, &ctx);
        assert!(r.findings.is_empty(), "{text:?} -> {:?}", r.findings);
        assert_all_two_splits(&guard, &ctx, text);
    }
}
