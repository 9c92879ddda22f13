//! wttr: print a one-line weather report from https://wttr.in.
//!
//!     wttr            # for wherever wttr.in places you
//!     wttr New York   # for a place
//!
//! The assignment's second demo package: building it with ../default.nix
//! fails on purpose (openssl-sys finds neither pkg-config nor OpenSSL).

use std::env;
use std::io::{self, Write};
use std::process;

use curl::easy::Easy;

fn main() {
    let place = env::args().skip(1).collect::<Vec<_>>().join("+");
    let url = format!("https://wttr.in/{}?format=3", place.replace(' ', "+"));
    if let Err(err) = fetch(&url) {
        eprintln!("wttr: {}: {}", url, err);
        process::exit(1);
    }
}

/// Downloads url and copies the body to stdout as it arrives.
fn fetch(url: &str) -> Result<(), curl::Error> {
    let mut easy = Easy::new();
    easy.url(url)?;
    // wttr.in answers plain text to curl and HTML to browsers.
    easy.useragent("curl (wttr demo)")?;
    easy.fail_on_error(true)?;
    easy.write_function(|data| {
        // Returning fewer bytes than received aborts the transfer, e.g.
        // when stdout is a closed pipe.
        match io::stdout().write_all(data) {
            Ok(()) => Ok(data.len()),
            Err(_) => Ok(0),
        }
    })?;
    easy.perform()
}
