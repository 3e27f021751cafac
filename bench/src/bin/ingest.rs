//! Ingest benchmark: N concurrent keep-alive connections post valid fulfillments
//! with 500 distinct keys to `/receiving/` of a real HQ (durable group commit on a
//! temp data dir), then the same load against a bare axum handler that answers
//! 200, on the same machine with the same generator (wrk). Prints accepted/s,
//! p50/p99 latency and the ratio, and checks every acknowledged record is stored.
//!
//! `cargo run --release -p hq-bench --bin ingest -- [--connections 64] [--seconds 10] [--keys 500]`

use anyhow::Context;
use clap::Parser;
use hq_bench::{cpu_by_thread, cpu_by_thread_since, wrk, CpuTimes, MachineTimes};
use interstella_hq::config::ServeArgs;
use interstella_hq::Application;

/// The same allocator as the `interstella-hq` binary, so the figures match it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Opts {
    #[arg(long, default_value_t = 64)]
    connections: u32,
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    #[arg(long, default_value_t = 500)]
    keys: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let opts = Opts::parse();
    // The same logging as `interstella-hq serve` (text, `RUST_LOG` or info), so
    // each request pays for its span as it does in the binary.
    interstella_hq::telemetry::init(interstella_hq::config::LogFormat::Text);
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().to_str().context("utf-8 temp dir")?.to_owned();
    let app = Application::build(ServeArgs::parse_from([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--data-dir",
        &data_dir,
        "--admin-token",
        "bench",
        // The default plan (100/s per key) would cap 500 keys at 50,000/s and
        // turn the excess into 429s: the benchmark measures HQ's capacity, so
        // the plan is set where it does not bind. Every request still goes
        // through the key lookup and the token bucket.
        "--throttle-rate",
        "1000000",
        "--throttle-burst",
        "1000000",
    ]))
    .await?;
    let hq = app.hq.clone();
    let hq_url = format!("http://{}/receiving/", app.local_addr());

    eprintln!("seeding {} attendees with keys ...", opts.keys);
    let mut keys = Vec::with_capacity(opts.keys);
    let mut seeding = Vec::new();
    for i in 0..opts.keys {
        let hq = hq.clone();
        seeding.push(tokio::spawn(async move {
            let user = hq
                .accounts
                .signup(&format!("attendee{i:04}"), "benchmark-password")
                .await?;
            anyhow::Ok(hq.accounts.key(&user).await?.value.expose().to_owned())
        }));
    }
    for s in seeding {
        keys.push(s.await??);
    }

    let script = dir.path().join("ingest.lua");
    std::fs::write(&script, lua_script(&keys))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let bare_url = format!("http://{}/receiving/", bare.local_addr()?);
    tokio::spawn(async move {
        let router =
            axum::Router::new().route("/receiving/", axum::routing::post(|| async { "ok" }));
        axum::serve(bare, router).await
    });

    let (c, s) = (opts.connections, opts.seconds);
    eprintln!("wrk: {c} connections, {s} s, against HQ at {hq_url} ...");
    let before = hq.ledger.count().await?;
    let (cpu, machine) = (CpuTimes::now(), MachineTimes::now());
    let threads = cpu_by_thread();
    let hq_run = tokio::task::spawn_blocking({
        let (url, script) = (hq_url.clone(), script.clone());
        move || wrk(&url, &script, c, s)
    })
    .await??;
    let hq_cpu = CpuTimes::now().since(cpu);
    let hq_busy = MachineTimes::now().busy_since(machine);
    let threads: Vec<(String, f64)> = cpu_by_thread_since(&threads)
        .into_iter()
        .filter(|(_, t)| *t * 1e6 / hq_run.requests as f64 >= 0.05)
        .collect();
    let stored = hq.ledger.count().await? - before;
    eprintln!("wrk: {c} connections, {s} s, against a bare axum handler ...");
    let (cpu, machine) = (CpuTimes::now(), MachineTimes::now());
    let bare_run = tokio::task::spawn_blocking(move || wrk(&bare_url, &script, c, s)).await??;
    let bare_cpu = CpuTimes::now().since(cpu);
    let bare_busy = MachineTimes::now().busy_since(machine);

    let acknowledged = hq_run.requests - hq_run.non_2xx;
    let ratio = hq_run.ok_per_sec() / bare_run.ok_per_sec();
    println!(
        "ingest benchmark ({c} keep-alive connections, {} keys, {s} s each, wrk -t2)",
        opts.keys
    );
    println!(
        "  HQ /receiving/ : {:>9.0} accepted/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  ({} non-2xx)",
        hq_run.ok_per_sec(),
        hq_run.p50_ms,
        hq_run.p90_ms,
        hq_run.p99_ms,
        hq_run.non_2xx
    );
    println!(
        "  bare axum 200  : {:>9.0} requests/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms",
        bare_run.ok_per_sec(),
        bare_run.p50_ms,
        bare_run.p90_ms,
        bare_run.p99_ms
    );
    let per_request = |cpu: f64, run: &hq_bench::WrkRun| cpu * 1e6 / run.requests as f64;
    println!(
        "  CPU per request: HQ {:.1} µs, bare {:.1} µs; wrk {:.1} / {:.1} µs",
        per_request(hq_cpu.own, &hq_run),
        per_request(bare_cpu.own, &bare_run),
        per_request(hq_cpu.children, &hq_run),
        per_request(bare_cpu.children, &bare_run),
    );
    println!(
        "  machine busy: {:.0}% during HQ's run, {:.0}% during the bare handler's",
        hq_busy * 100.0,
        bare_busy * 100.0
    );
    let by_thread: Vec<String> = threads
        .iter()
        .map(|(name, t)| format!("{name} {:.1}", t * 1e6 / hq_run.requests as f64))
        .collect();
    println!(
        "  HQ's CPU per request by thread (µs): {}",
        by_thread.join(", ")
    );
    println!("  ratio HQ / bare: {ratio:.2}  (target >= 0.5; p99 target <= 10 ms)");
    println!("  durable: {stored} records stored for {acknowledged} acknowledged by wrk");
    let _ = stop.send(());
    server.await??;
    anyhow::ensure!(
        stored >= acknowledged,
        "acknowledged fulfillments are missing from the store"
    );
    Ok(())
}

/// A wrk script that rotates through the keys, sending what the attendees'
/// fulfiller sends: a JSON body and no Content-Type.
fn lua_script(keys: &[String]) -> String {
    let list: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
    format!(
        r#"local keys = {{{}}}
local n = 0
wrk.method = "POST"
wrk.body = '{{"iridium": 1, "magnesite": 1}}'
request = function()
  n = n + 1
  return wrk.format(nil, nil, {{["x-api-key"] = keys[(n % #keys) + 1]}})
end
"#,
        list.join(",")
    )
}
