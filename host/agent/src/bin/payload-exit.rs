//! A test payload: prints its arguments to stdout, a line to stderr, and
//! exits with the code given as its first argument (default 0).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("payload-exit args: {}", args.join(" "));
    eprintln!("payload-exit on stderr");
    let code = args.first().and_then(|a| a.parse::<i32>().ok()).unwrap_or(0);
    std::process::exit(code);
}
