use proptest::prelude::*;
use secureinfer_guard::extraction::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn features_total_and_deterministic(s in "\\PC{0,300}", single in any::<bool>()) {
        let d = ExtractionDetector::new(ExtractionConfig::default());
        let a = d.features(&s, single);
        let b = d.features(&s, single);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.band_keys.len(), d.lsh().bands);
        let mut w = TenantWindow::new();
        let r = w.observe(&d, 0, &a);
        prop_assert!(r.score <= 100);
        let _ = output_divergence(&s);
    }

    #[test]
    fn features_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let s = String::from_utf8_lossy(&bytes);
        let d = ExtractionDetector::new(ExtractionConfig { shingle_words: 3, ..ExtractionConfig::default() });
        prop_assert_eq!(d.features(&s, false), d.features(&s, false));
    }

    #[test]
    fn rounding_is_bounded(x in -1.0e6f64..0.0, dec in 0u8..20) {
        let r = round_logprob(x, dec);
        prop_assert!(r <= 0.0);
        prop_assert!((r - x).abs() <= 0.5 + 1e-9);
    }
}

proptest! {
    #[test]
    fn features_survive_the_wire_encoding(s in "\\PC{0,300}", single in any::<bool>()) {
        let det = ExtractionDetector::new(ExtractionConfig::default());
        let f = det.features(&s, single);
        let bytes = f.to_bytes();
        prop_assert_eq!(QueryFeatures::from_bytes(&bytes), Some(f));
        // Any truncation or extension is refused, never misread.
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            prop_assert_eq!(QueryFeatures::from_bytes(&bytes[..cut]), None);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        prop_assert_eq!(QueryFeatures::from_bytes(&longer), None);
    }
}
