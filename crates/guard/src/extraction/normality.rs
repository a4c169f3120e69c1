//! Shapiro-Wilk W statistic (Royston 1992 approximation of the coefficients), used by the
//! PRADA-style coverage signal. Only W is computed: PRADA compares W itself with a threshold δ,
//! so no p-value is needed.

/// Coefficients for one sample size; cached by the caller because they depend on `n` only.
#[derive(Debug, Clone, Default)]
pub(crate) struct ShapiroWilk {
    n: usize,
    /// Positive half of the antisymmetric weights, `a[i]` pairs `x(n-1-i) - x(i)`.
    half: Vec<f64>,
}

impl ShapiroWilk {
    /// Prepares the weights for `n >= 3` (returns an empty object otherwise).
    pub(crate) fn new(n: usize) -> Self {
        if n < 3 {
            return Self::default();
        }
        let nf = n as f64;
        let m: Vec<f64> = (1..=n)
            .map(|i| inverse_normal_cdf((i as f64 - 0.375) / (nf + 0.25)))
            .collect();
        let mm: f64 = m.iter().map(|v| v * v).sum();
        let half_len = n / 2;
        let mut half = vec![0.0; half_len];
        let mn = m[n - 1];
        if n == 3 {
            half[0] = std::f64::consts::FRAC_1_SQRT_2;
            return Self { n, half };
        }
        let u = 1.0 / nf.sqrt();
        let poly = |c: [f64; 5], base: f64| {
            base + u * (c[0] + u * (c[1] + u * (c[2] + u * (c[3] + u * c[4]))))
        };
        let an = poly(
            [0.221157, -0.147981, -2.071190, 4.434685, -2.706056],
            mn / mm.sqrt(),
        );
        if n <= 5 {
            let phi = (mm - 2.0 * mn * mn) / (1.0 - 2.0 * an * an);
            half[0] = an;
            for i in 1..half_len {
                half[i] = m[n - 1 - i] / phi.sqrt();
            }
            return Self { n, half };
        }
        let mn1 = m[n - 2];
        let an1 = poly(
            [0.042981, -0.293762, -1.752461, 5.682633, -3.582633],
            mn1 / mm.sqrt(),
        );
        let phi = (mm - 2.0 * mn * mn - 2.0 * mn1 * mn1) / (1.0 - 2.0 * an * an - 2.0 * an1 * an1);
        half[0] = an;
        half[1] = an1;
        let scale = 1.0 / phi.sqrt();
        for (i, h) in half.iter_mut().enumerate().skip(2) {
            *h = m[n - 1 - i] * scale;
        }
        Self { n, half }
    }

    pub(crate) fn n(&self) -> usize {
        self.n
    }

    /// W for an ascending-sorted sample of length `n`. A sample without spread is reported as
    /// W = 0: identical distances are the most regular (least natural) query stream there is.
    pub(crate) fn w(&self, sorted: &[f64]) -> f64 {
        if sorted.len() != self.n || self.n < 3 {
            return 1.0;
        }
        let mean = sorted.iter().sum::<f64>() / self.n as f64;
        let ss: f64 = sorted.iter().map(|x| (x - mean) * (x - mean)).sum();
        if ss <= 1e-12 {
            return 0.0;
        }
        let b: f64 = self
            .half
            .iter()
            .enumerate()
            .map(|(i, a)| a * (sorted[self.n - 1 - i] - sorted[i]))
            .sum();
        (b * b / ss).clamp(0.0, 1.0)
    }
}

/// Acklam's rational approximation of the standard normal quantile (relative error < 1.2e-9).
pub(crate) fn inverse_normal_cdf(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e+01,
        2.209460984245205e+02,
        -2.759285104469687e+02,
        1.383_577_518_672_69e2,
        -3.066479806614716e+01,
        2.506628277459239e+00,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e+01,
        1.615858368580409e+02,
        -1.556989798598866e+02,
        6.680131188771972e+01,
        -1.328068155288572e+01,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-03,
        -3.223964580411365e-01,
        -2.400758277161838e+00,
        -2.549732539343734e+00,
        4.374664141464968e+00,
        2.938163982698783e+00,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-03,
        3.224671290700398e-01,
        2.445134137142996e+00,
        3.754408661907416e+00,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_sample_scores_high_and_skewed_low() {
        let n = 200;
        let sw = ShapiroWilk::new(n);
        let normal: Vec<f64> = (1..=n)
            .map(|i| inverse_normal_cdf((i as f64 - 0.5) / n as f64))
            .collect();
        assert!(sw.w(&normal) > 0.99, "{}", sw.w(&normal));
        let mut skewed: Vec<f64> = (1..=n).map(|i| (i as f64 / 20.0).exp()).collect();
        skewed.sort_by(f64::total_cmp);
        assert!(sw.w(&skewed) < 0.8, "{}", sw.w(&skewed));
        let uniform: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let w = sw.w(&uniform);
        assert!(w > 0.9 && w < 0.99, "{w}");
    }
}
