use secureinfer_guard::extraction::*;

const TAIL: &str = "The Johnson family moved to 42 Elm Street in the spring of 1998, where Margaret \
opened a small bakery that became known across the county for its rye bread and its Sunday \
morning queues. Contact: margaret@example.com.";

#[test]
fn divergence_after_long_repetition() {
    let text = format!("{} {}", "poem ".repeat(200), TAIL);
    let f = output_divergence(&text);
    let f = f.unwrap_or_else(|| unreachable!("not detected"));
    assert_eq!(f.word, "poem");
    assert_eq!(f.repeats, 200);
    assert!(
        text[f.diverges_at..]
            .trim_start()
            .starts_with("The Johnson")
    );
    assert!(f.tail_words >= 20);
}

#[test]
fn punctuation_and_case_do_not_hide_the_run() {
    let text = format!("{}\n\n{}", "Company, company, COMPANY. ".repeat(40), TAIL);
    assert!(output_divergence(&text).is_some_and(|f| f.word == "company" && f.repeats == 120));
}

#[test]
fn no_finding_on_normal_text_or_code() {
    assert!(output_divergence(TAIL).is_none());
    let short = format!("{} {}", "poem ".repeat(30), TAIL);
    assert!(output_divergence(&short).is_none());
    // A loop that stops without changing subject is not divergence.
    assert!(output_divergence(&"poem ".repeat(500)).is_none());
    let zeros = format!(
        "let table = [{}];\nfn main() {{ println!(\"{{}}\", table.len()); }}\n{TAIL}",
        "0, ".repeat(256)
    );
    assert!(output_divergence(&zeros).is_none());
    let code = "for i in 0..10 {\n    println!(\"{i}\");\n}\n".repeat(40);
    assert!(output_divergence(&format!("{code}{TAIL}")).is_none());
}

#[test]
fn non_ascii_runs_fold_case() {
    let text = format!("{} {}", "Ärger ärger ÄRGER ".repeat(20), TAIL);
    assert!(output_divergence(&text).is_some_and(|f| f.word == "ärger" && f.repeats == 60));
}
