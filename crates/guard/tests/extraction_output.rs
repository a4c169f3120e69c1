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

/// Feeds `text` to a scanner in pieces of `size` bytes (cut on char boundaries).
fn scan_in_pieces(text: &str, size: usize) -> Option<DivergenceFinding> {
    let mut s = DivergenceScanner::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        if s.push(&text[start..end]).is_some() {
            return s.finding().cloned();
        }
        start = end;
    }
    s.finish().cloned()
}

#[test]
fn stream_scanner_agrees_with_whole_text_check() {
    let cases = [
        format!("{} {}", "poem ".repeat(200), TAIL),
        format!("{}\n\n{}", "Company, company, COMPANY. ".repeat(40), TAIL),
        format!("{} {}", "poem ".repeat(30), TAIL),
        "poem ".repeat(500),
        TAIL.to_string(),
        format!("{} {}", "0 ".repeat(300), TAIL),
        format!("Sure! {} {}", "Ünïcode ".repeat(60), TAIL),
    ];
    for text in &cases {
        // tail_words differs by design: the scanner stops counting once it is sure.
        let key = |f: DivergenceFinding| (f.word, f.repeats, f.diverges_at);
        let whole = output_divergence(text).map(key);
        for size in [1, 3, 7, 64, 4096] {
            let streamed = scan_in_pieces(text, size);
            assert!(
                streamed
                    .as_ref()
                    .is_none_or(|f| f.tail_words >= MIN_TAIL_WORDS)
            );
            assert_eq!(streamed.map(key), whole, "piece size {size}");
        }
    }
}

#[test]
fn stream_scanner_fires_before_the_end_of_a_long_leak() {
    let leak = format!("{} {}", "poem ".repeat(100), TAIL.repeat(50));
    let mut s = DivergenceScanner::new();
    let mut fed = 0;
    for piece in leak.split_inclusive(' ') {
        fed += piece.len();
        if s.push(piece).is_some() {
            break;
        }
    }
    let f = s
        .finding()
        .cloned()
        .unwrap_or_else(|| unreachable!("not detected"));
    assert_eq!((f.word.as_str(), f.repeats), ("poem", 100));
    // Stopped about MIN_TAIL_WORDS words after the run, not at the end of the text.
    assert!(fed < f.diverges_at + 400, "fed {fed}");
}
