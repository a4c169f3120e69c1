//! Reading a Prometheus/OpenMetrics text exposition in tests.

use std::collections::HashMap;

/// Samples keyed by `name{labels}` exactly as exposed (labels in exposition order).
pub struct Scrape {
    pub text: String,
    samples: HashMap<String, f64>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut samples = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            // The value follows the last space outside the label braces.
            let split_at = match line.rfind('}') {
                Some(close) => line[close..].find(' ').map(|i| close + i),
                None => line.find(' '),
            };
            let Some(at) = split_at else { continue };
            let (key, value) = line.split_at(at);
            let value = value.split_whitespace().next().unwrap_or("");
            if let Ok(v) = value.parse::<f64>() {
                samples.insert(key.to_string(), v);
            }
        }
        Scrape {
            text: text.to_string(),
            samples,
        }
    }

    /// The sample's value, or 0 when it is absent (a counter never incremented).
    pub fn get(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    pub fn has(&self, key: &str) -> bool {
        self.samples.contains_key(key)
    }

    /// Sum of every sample of `name` whose labels contain all of `labels` (`k="v"` pairs).
    pub fn sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.samples
            .iter()
            .filter(|(k, _)| {
                let (n, rest) = k.split_once('{').unwrap_or((k.as_str(), ""));
                n == name && labels.iter().all(|l| rest.contains(l))
            })
            .map(|(_, v)| v)
            .sum()
    }
}
