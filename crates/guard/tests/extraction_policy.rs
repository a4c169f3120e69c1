use secureinfer_guard::extraction::*;

fn view<'a>() -> ProbRequestView<'a> {
    ProbRequestView::default()
}

#[test]
fn plain_request_passes_untouched() {
    let adj = check_request(&LogprobPolicy::default(), &view());
    assert_eq!(adj, Ok(RequestAdjustments::default()));
}

#[test]
fn logit_bias_rejected_unless_allowed() {
    let bias = [("50256", -100.0)];
    let r = ProbRequestView {
        logit_bias: &bias,
        ..view()
    };
    let err = check_request(&LogprobPolicy::default(), &r).err();
    assert_eq!(err, Some(PolicyViolation::LogitBiasNotAllowed));
    assert_eq!(err.map(|e| e.param()), Some("logit_bias"));
    let allowed = LogprobPolicy {
        allow_logit_bias: true,
        ..LogprobPolicy::default()
    };
    assert!(check_request(&allowed, &r).is_ok());
}

#[test]
fn logit_bias_limits() {
    let p = LogprobPolicy {
        allow_logit_bias: true,
        ..LogprobPolicy::default()
    };
    let ids: Vec<String> = (0..21).map(|i| i.to_string()).collect();
    let many: Vec<(&str, f64)> = ids.iter().map(|s| (s.as_str(), -1.0)).collect();
    let r = ProbRequestView {
        logit_bias: &many,
        ..view()
    };
    assert_eq!(
        check_request(&p, &r),
        Err(PolicyViolation::TooManyLogitBiasEntries { count: 21, max: 20 })
    );
    let pos = [("11", -5.0), ("12", 3.0)];
    let r = ProbRequestView {
        logit_bias: &pos,
        ..view()
    };
    assert_eq!(
        check_request(&p, &r),
        Err(PolicyViolation::PositiveLogitBias { token: "12".into() })
    );
    let p2 = LogprobPolicy {
        allow_positive_bias: true,
        ..p.clone()
    };
    assert!(check_request(&p2, &r).is_ok());
    for bad in [[("abc", -1.0)], [("5", f64::NAN)], [("5", -101.0)]] {
        let r = ProbRequestView {
            logit_bias: &bad,
            ..view()
        };
        assert!(matches!(
            check_request(&p, &r),
            Err(PolicyViolation::InvalidLogitBias { .. })
        ));
    }
}

#[test]
fn logit_bias_never_with_logprobs() {
    let p = LogprobPolicy {
        allow_logit_bias: true,
        allow_positive_bias: true,
        ..LogprobPolicy::default()
    };
    let bias = [("42", -10.0)];
    for r in [
        ProbRequestView {
            logit_bias: &bias,
            logprobs: true,
            ..view()
        },
        ProbRequestView {
            logit_bias: &bias,
            top_logprobs: Some(3),
            ..view()
        },
    ] {
        let e = check_request(&p, &r).err();
        assert_eq!(e, Some(PolicyViolation::LogitBiasWithLogprobs));
        assert_eq!(e.map(|e| e.param()), Some("logit_bias"));
    }
}

#[test]
fn top_logprobs_clamped_and_all_rejected() {
    let p = LogprobPolicy::default();
    let r = ProbRequestView {
        logprobs: true,
        top_logprobs: Some(20),
        ..view()
    };
    let adj = check_request(&p, &r).unwrap_or_default();
    assert_eq!(
        adj.top_logprobs,
        Some(Clamped {
            requested: 20,
            applied: 5
        })
    );
    assert_eq!(adj.round_decimals, Some(2));
    let r = ProbRequestView {
        logprobs: true,
        top_logprobs: Some(5),
        ..view()
    };
    assert_eq!(check_request(&p, &r).map(|a| a.top_logprobs), Ok(None));
    let r = ProbRequestView {
        logprobs: true,
        top_logprobs: Some(-1),
        ..view()
    };
    let e = check_request(&p, &r).err();
    assert_eq!(e, Some(PolicyViolation::AllTopLogprobs));
    assert_eq!(e.map(|e| e.param()), Some("top_logprobs"));
    let r = ProbRequestView {
        top_logprobs: Some(-7),
        ..view()
    };
    assert!(matches!(
        check_request(&p, &r),
        Err(PolicyViolation::InvalidTopLogprobs { value: -7 })
    ));
}

#[test]
fn vllm_extras_and_echo_rejected() {
    let p = LogprobPolicy::default();
    let cases = [
        (
            ProbRequestView {
                prompt_logprobs: true,
                ..view()
            },
            "prompt_logprobs",
        ),
        (
            ProbRequestView {
                allowed_token_ids: true,
                ..view()
            },
            "allowed_token_ids",
        ),
        (
            ProbRequestView {
                echo: true,
                logprobs: true,
                ..view()
            },
            "echo",
        ),
    ];
    for (r, param) in cases {
        let e = check_request(&p, &r).err();
        assert_eq!(e.as_ref().map(|e| e.param()), Some(param));
        assert!(e.is_some_and(|e| e.message().contains(param)));
    }
    assert!(
        check_request(
            &p,
            &ProbRequestView {
                echo: true,
                ..view()
            }
        )
        .is_ok()
    );
}

#[test]
fn n_capped() {
    let p = LogprobPolicy::default();
    let adj = check_request(
        &p,
        &ProbRequestView {
            n: Some(10),
            ..view()
        },
    );
    assert_eq!(
        adj.map(|a| a.n),
        Ok(Some(Clamped {
            requested: 10,
            applied: 4
        }))
    );
    assert_eq!(
        check_request(
            &p,
            &ProbRequestView {
                n: Some(0),
                ..view()
            }
        ),
        Err(PolicyViolation::InvalidN { value: 0 })
    );
}

#[test]
fn rounding() {
    assert_eq!(round_logprob(-1.23456, 2), -1.23);
    assert_eq!(round_logprob(-0.004, 2), 0.0);
    assert!(round_logprob(-0.004, 2).is_sign_positive());
    assert_eq!(round_logprob(f64::NEG_INFINITY, 2), f64::NEG_INFINITY);
    assert_eq!(round_logprob(-2.5, 0), -3.0);
}

#[test]
fn budget_reports_half_and_full() {
    assert_eq!(logprob_cost(100, 5), 600);
    let mut b = LogprobBudget::new();
    let day = 86_400_000u64;
    assert_eq!(b.charge(day, 400, 1000).crossed, None);
    assert_eq!(
        b.charge(day + 1, 200, 1000).crossed,
        Some(BudgetCrossing::Half)
    );
    assert_eq!(b.charge(day + 2, 100, 1000).crossed, None);
    let r = b.charge(day + 3, 400, 1000);
    assert_eq!(r.crossed, Some(BudgetCrossing::Full));
    assert!(r.exhausted);
    let r = b.charge(2 * day, 10, 1000);
    assert_eq!((r.used, r.exhausted, r.crossed), (10, false, None));
}

#[test]
fn sweep_tracker_expires() {
    let mut s = LogitBiasSweep::new(1000);
    s.record(0, 1000, ["1", "2", "3", "2"]);
    assert_eq!(s.distinct(10, 1000), 3);
    s.record(600, 1000, ["3"]);
    assert_eq!(s.distinct(1_200, 1000), 1);
    assert_eq!(s.distinct(5_000, 1000), 0);
}
