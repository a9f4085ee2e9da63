//! `vipd check-config FILE...`: the same loader `vipd run` uses, so what passes here is what
//! the daemon accepts.

use std::path::PathBuf;
use std::process::ExitCode;

/// Checks every file, prints findings, returns 1 if any file was refused.
pub fn run(files: &[PathBuf], quiet: bool) -> ExitCode {
    let mut failed = 0usize;
    for f in files {
        match vipd_config::load_file(f) {
            Ok(loaded) => {
                if !loaded.warnings.is_empty() {
                    eprint!("{}", loaded.render_warnings());
                }
                if !quiet {
                    let c = &loaded.config;
                    println!(
                        "{}: ok ({:?}, {} service(s), {} check(s), {} BGP neighbor(s), {} warning(s))",
                        f.display(),
                        c.global.role,
                        c.services.len(),
                        c.checks.len(),
                        c.bgp.as_ref().map_or(0, |b| b.neighbors.len()),
                        loaded.warnings.len()
                    );
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}\n");
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
