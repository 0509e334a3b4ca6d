// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo run -p adopter`: one run on the host model, and what it saw.

use std::process::ExitCode;

fn main() -> ExitCode {
    match adopter::scenario::run() {
        Ok(r) => {
            println!("vLPI while resident: {:?}", r.direct);
            println!(
                "doorbell (INTID, vPE): {:?}, waiter woken: {}",
                r.doorbell, r.woken
            );
            println!("vLPI after the wake-up: {:?}", r.after_wake);
            println!(
                "arena pages: {} up, {} with the guest, {} after teardown, {} after shutdown ({} regions), {} at most",
                r.pages[0], r.pages[1], r.pages[2], r.pages[3], r.regions_left, r.pages[4]
            );
            println!("teardown and shutdown commands:");
            for c in &r.teardown {
                println!("  {c}");
            }
            println!(
                "tables clean: {}, ITS off: {}, queue and tables freed: {}, LPIs on: {:?}",
                r.tables_clean, r.its_off, r.queue_and_tables_freed, r.lpis_on
            );
            println!("after shutdown: {:?}", r.after_shutdown);
            if r.model_errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!("the model recorded errors: {:?}", r.model_errors);
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("adopter: {e:?}");
            ExitCode::FAILURE
        }
    }
}
