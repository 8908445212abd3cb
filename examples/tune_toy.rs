//! The closed-form check of reward fine-tuning (docs/TUNE.md): a CFM meta-model of N(μ, Σ) over a 2-D weight
//! space, tuned by adjoint matching with the linear reward r(θ) = a·θ, a = (1, −1), against the tilted law
//! N(μ + λΣa, Σ).
//!
//! `cargo run --release --example tune_toy -- [gaussian|kaiming] [iterations] [lambda]` (defaults: gaussian,
//! 150, 2) prints the relative errors of the mean and covariance over 8,192 generated samples — the base
//! against N(μ, Σ) and against the tilt, the tuned model against the tilt — for three ODE samplers.

use ndarray::array;
use weightflow::flow::Sampler;
use weightflow::space::SourceKind;
use weightflow::tune::{mean_and_covariance, AdjointMatching, GaussianToy, LinearReward};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let source: SourceKind =
        serde_json::from_value(serde_json::Value::String(args.get(1).cloned().unwrap_or_else(|| "gaussian".into())))?;
    let iterations: usize = args.get(2).map_or(Ok(150), |s| s.parse())?;
    let lambda: f64 = args.get(3).map_or(Ok(2.0), |s| s.parse())?;
    let toy = GaussianToy::standard();
    let a = array![1.0, -1.0];
    let tilted = toy.tilted_linear(a.view(), lambda);
    let started = std::time::Instant::now();
    let base = toy.train_base(source)?;
    println!("{source:?} source: base trained in {:.1} s", started.elapsed().as_secs_f64());
    let n = 8192;
    let report = |name: &str, samples: &ndarray::Array2<f32>, target: &GaussianToy| {
        let (m, c) = target.relative_errors(samples.view());
        let (mean, cov) = mean_and_covariance(samples.view());
        println!(
            "{name:<34} mean rel. error {m:.4}   covariance rel. error {c:.4}   mean {:.3?}   cov {:.3?}",
            mean.to_vec(),
            cov.iter().collect::<Vec<_>>()
        );
    };
    println!("target N(μ, Σ): mean {:?}; tilt N(μ + λΣa, Σ): mean {:?}", toy.mean.to_vec(), tilted.mean.to_vec());
    let base_samples = base.generate(n, Sampler::Rk4, 50, 7)?;
    report("base (rk4 50) vs N(μ, Σ)", &base_samples, &toy);
    report("base (rk4 50) vs tilt", &base_samples, &tilted);
    let reward = LinearReward { a: a.mapv(|v| v as f32) };
    let mut am = AdjointMatching::new(&base, &reward, GaussianToy::tune_config(lambda, iterations))?;
    let every = (iterations / 4).max(1);
    let started = std::time::Instant::now();
    for i in 0..iterations {
        let s = am.step()?;
        if (i + 1) % every == 0 {
            println!(
                "iteration {:>4}: mean reward {:.4}, loss {:.4}, gradient norm {:.3}",
                s.iteration, s.reward, s.loss, s.grad_norm
            );
        }
    }
    let tuned = am.model()?;
    println!("tuned {iterations} iterations (λ = {lambda}) in {:.1} s", started.elapsed().as_secs_f64());
    for (sampler, steps) in [(Sampler::Rk4, 50), (Sampler::Euler, 300), (Sampler::Heun, 30)] {
        let name = format!("tuned ({sampler:?} {steps}) vs tilt");
        report(&name, &tuned.generate(n, sampler, steps, 7)?, &tilted);
    }
    Ok(())
}
