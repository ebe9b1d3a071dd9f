//! Distribution distances between two sets of feature vectors: the Fréchet distance of FID
//! (Heusel et al. 2017) and KID (Bińkowski et al. 2018), as clean-fid computes them (Parmar et
//! al. 2022).
//!
//! - Fréchet distance: ‖μ1−μ2‖² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), covariances with n − 1, computed in
//!   f64 by the stable symmetric route Tr((Σ1Σ2)^½) = Σ √max(λ_i, 0) over the eigenvalues of
//!   A Σ2 A with A = Σ1^½. It is called FID only when the features are Inception-v3 pool3
//!   features under the clean-fid protocol; every other use is labelled with its extractor.
//! - KID: unbiased MMD² with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³, averaged
//!   over random subsets (clean-fid: 100 subsets of at most 1000); can be negative.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

use crate::EvalError;
use unas_space::rng::Rng;

/// Mean and covariance (n − 1) of a feature set.
#[derive(Clone, Debug, PartialEq)]
pub struct GaussianStats {
    /// Mean, length d.
    pub mean: DVector<f64>,
    /// Covariance, d x d.
    pub cov: DMatrix<f64>,
    /// Number of feature vectors.
    pub n: usize,
}

/// Features as rows: `n` vectors of dimension `d`.
#[derive(Clone, Debug, PartialEq)]
pub struct Features {
    /// Row-major values, `n * d`.
    pub data: Vec<f32>,
    /// Dimension.
    pub dim: usize,
}

impl Features {
    /// Wraps row-major data.
    pub fn new(data: Vec<f32>, dim: usize) -> Result<Self, EvalError> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(EvalError::Unsupported(format!(
                "feature data of length {} is not a whole number of {dim}-d vectors",
                data.len()
            )));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(EvalError::Unsupported("features contain NaN or inf".into()));
        }
        Ok(Self { data, dim })
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// True when there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Vector `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Mean and covariance (needs at least 2 vectors).
    pub fn stats(&self) -> Result<GaussianStats, EvalError> {
        let (n, d) = (self.len(), self.dim);
        if n < 2 {
            return Err(EvalError::Unsupported(
                "a covariance needs at least 2 feature vectors".into(),
            ));
        }
        let mut mean = DVector::<f64>::zeros(d);
        for i in 0..n {
            for (j, &v) in self.row(i).iter().enumerate() {
                mean[j] += v as f64;
            }
        }
        mean /= n as f64;
        let mut centred = DMatrix::<f64>::zeros(n, d);
        for i in 0..n {
            for (j, &v) in self.row(i).iter().enumerate() {
                centred[(i, j)] = v as f64 - mean[j];
            }
        }
        let cov = centred.transpose() * &centred / (n as f64 - 1.0);
        Ok(GaussianStats { mean, cov, n })
    }
}

fn sym_sqrt(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let eig = SymmetricEigen::new(sym);
    let sqrt_vals = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&sqrt_vals) * eig.eigenvectors.transpose()
}

/// Fréchet distance between two Gaussians.
pub fn frechet_distance(a: &GaussianStats, b: &GaussianStats) -> Result<f64, EvalError> {
    if a.mean.len() != b.mean.len() {
        return Err(EvalError::Unsupported(format!(
            "feature dimensions differ: {} vs {}",
            a.mean.len(),
            b.mean.len()
        )));
    }
    let diff = &a.mean - &b.mean;
    let root_a = sym_sqrt(&a.cov);
    let inner = &root_a * &b.cov * &root_a;
    let inner = (&inner + inner.transpose()) * 0.5;
    let trace_sqrt: f64 = SymmetricEigen::new(inner)
        .eigenvalues
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    Ok(diff.dot(&diff) + a.cov.trace() + b.cov.trace() - 2.0 * trace_sqrt)
}

/// KID estimate: mean and standard deviation over subsets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Kid {
    /// Mean unbiased MMD² over the subsets.
    pub mean: f64,
    /// Standard deviation over the subsets.
    pub std: f64,
    /// Subsets drawn.
    pub subsets: usize,
    /// Vectors per subset (from each set).
    pub subset_size: usize,
}

/// Kernel inception distance between two feature sets: `subsets` random subsets of
/// `min(subset_size, n_a, n_b)` vectors from each set (seeded), unbiased MMD² per subset.
pub fn kid(
    a: &Features,
    b: &Features,
    subsets: usize,
    subset_size: usize,
    seed: u64,
) -> Result<Kid, EvalError> {
    if a.dim != b.dim {
        return Err(EvalError::Unsupported(format!(
            "feature dimensions differ: {} vs {}",
            a.dim, b.dim
        )));
    }
    let m = subset_size.min(a.len()).min(b.len());
    if m < 2 || subsets == 0 {
        return Err(EvalError::Unsupported(
            "KID needs at least 2 vectors per set and 1 subset".into(),
        ));
    }
    let d = a.dim as f64;
    let k = |x: &[f32], y: &[f32]| -> f64 {
        let dot: f64 = x.iter().zip(y).map(|(p, q)| *p as f64 * *q as f64).sum();
        (dot / d + 1.0).powi(3)
    };
    let mut rng = Rng::seed(seed);
    let mut values = Vec::with_capacity(subsets);
    for _ in 0..subsets {
        let ia = choose(&mut rng, a.len(), m);
        let ib = choose(&mut rng, b.len(), m);
        let (mut kxx, mut kyy, mut kxy) = (0.0, 0.0, 0.0);
        for (p, &i) in ia.iter().enumerate() {
            for &j in &ia[p + 1..] {
                kxx += k(a.row(i), a.row(j));
            }
        }
        for (p, &i) in ib.iter().enumerate() {
            for &j in &ib[p + 1..] {
                kyy += k(b.row(i), b.row(j));
            }
        }
        for &i in &ia {
            for &j in &ib {
                kxy += k(a.row(i), b.row(j));
            }
        }
        let mf = m as f64;
        values.push(2.0 * (kxx + kyy) / (mf * (mf - 1.0)) - 2.0 * kxy / (mf * mf));
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
    Ok(Kid {
        mean,
        std: var.sqrt(),
        subsets,
        subset_size: m,
    })
}

/// `m` distinct indices out of `0..n` (partial Fisher-Yates).
fn choose(rng: &mut Rng, n: usize, m: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..m {
        let j = i + rng.below(n - i);
        idx.swap(i, j);
    }
    idx.truncate(m);
    idx
}

/// Kendall's τ-b rank correlation of two equally long score lists (ties count for neither
/// concordance nor discordance; 1 = same order, −1 = reversed). NaN when either list is
/// constant or shorter than 2.
pub fn kendall_tau(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (mut concordant, mut discordant, mut ties_a, mut ties_b) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let (da, db) = (a[i] - a[j], b[i] - b[j]);
            if da == 0.0 && db == 0.0 {
                continue;
            } else if da == 0.0 {
                ties_a += 1;
            } else if db == 0.0 {
                ties_b += 1;
            } else if (da > 0.0) == (db > 0.0) {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    let n0 = (concordant + discordant) as f64;
    let denom = ((n0 + ties_a as f64) * (n0 + ties_b as f64)).sqrt();
    (concordant - discordant) as f64 / denom
}
