//! `schedbox key`, `schedbox sign` and `schedbox source-digest`: signed
//! components, which a policy trusts by key (`[trusted] keys`) or by a builder's
//! source digest (`[trusted] builders` and `sources`); see `docs/TRUST.md`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::{Args, Subcommand};
use schedbox::signing;

use super::Failure;

#[derive(Args, Debug)]
pub struct KeyArgs {
    #[command(subcommand)]
    pub command: KeyCommand,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Write a new ed25519 private key to FILE (mode 0600; an existing file is
    /// never overwritten) and its public key to FILE.pub; print the public key.
    Generate {
        /// The private key file to create.
        file: PathBuf,
    },
    /// Print the public key (`ed25519:…`, what `[trusted] keys` lists) of a private key file.
    Public {
        /// A private key file written by `schedbox key generate`.
        file: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct SignArgs {
    /// The private key file (`schedbox key generate`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Also attest the digest of these sources (as `schedbox source-digest` computes
    /// it, paths relative to the current directory), for `[trusted] builders`/`sources`.
    #[arg(long = "source", value_name = "PATH", conflicts_with = "source_digest")]
    pub sources: Vec<PathBuf>,
    /// Attest this source digest (`sha256:…`, from `schedbox source-digest`).
    #[arg(long, value_name = "sha256:HEX")]
    pub source_digest: Option<String>,
    /// The component (.wasm) to sign.
    pub component: PathBuf,
    /// Where to write the signed component [the component itself, replaced].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SourceDigestArgs {
    /// Files and directories, relative to the current directory (the project
    /// root), written the same way by reviewer and builder.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Print the manifest (one `<sha256>  <path>` line per file) the digest is taken over.
    #[arg(long)]
    pub manifest: bool,
}

fn usage(e: impl std::fmt::Display) -> Failure {
    Failure::usage(anyhow!("{e}"))
}

pub fn key(a: KeyArgs) -> Result<u8, Failure> {
    match a.command {
        KeyCommand::Generate { file } => {
            let key = signing::generate_key().map_err(|e| usage(format!("cannot read random bytes: {e}")))?;
            let mut f =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&file).map_err(|e| {
                    usage(format!(
                        "cannot create the key {}: {e} (an existing key is never overwritten)",
                        file.display()
                    ))
                })?;
            f.write_all(signing::secret_text(&key).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| usage(format!("cannot write {}: {e}", file.display())))?;
            let public = signing::key_text(&key.verifying_key());
            let mut pub_file = file.clone().into_os_string();
            pub_file.push(".pub");
            std::fs::write(&pub_file, format!("{public}\n"))
                .map_err(|e| usage(format!("cannot write {}: {e}", Path::new(&pub_file).display())))?;
            println!("{public}");
            eprintln!(
                "wrote the private key {} (keep it off the machines that run scenarios) and {}",
                file.display(),
                Path::new(&pub_file).display()
            );
        }
        KeyCommand::Public { file } => {
            println!("{}", signing::key_text(&signing::read_secret(&file).map_err(usage)?.verifying_key()));
        }
    }
    Ok(0)
}

pub fn sign(a: SignArgs) -> Result<u8, Failure> {
    let key = signing::read_secret(&a.key).map_err(usage)?;
    if let Ok(meta) = std::fs::metadata(&a.key) {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!("the private key {} is readable by other users (chmod 600 it)", a.key.display());
        }
    }
    let source = match (&a.source_digest, a.sources.is_empty()) {
        (Some(d), _) => Some(signing::parse_source(d).map_err(usage)?),
        (None, false) => Some(signing::source_digest(Path::new("."), &a.sources).map_err(usage)?.0),
        (None, true) => None,
    };
    let bytes =
        std::fs::read(&a.component).map_err(|e| usage(format!("cannot read {}: {e}", a.component.display())))?;
    let signed = signing::sign(&bytes, &key, source.as_ref())
        .map_err(|e| usage(format!("cannot sign {}: {e}", a.component.display())))?;
    let out = a.output.as_ref().unwrap_or(&a.component);
    // Write beside the target and rename, so a reader never sees half a component.
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| usage(format!("cannot write in {}: {e}", dir.display())))?;
    if let Ok(meta) = std::fs::metadata(&a.component) {
        // The signed file keeps the input's mode (a temporary file starts at 0600).
        let _ = tmp.as_file().set_permissions(meta.permissions());
    }
    tmp.write_all(&signed).map_err(|e| usage(format!("cannot write {}: {e}", out.display())))?;
    tmp.persist(out).map_err(|e| usage(format!("cannot write {}: {}", out.display(), e.error)))?;
    let mut what = format!("signed {} with {}", out.display(), signing::key_text(&key.verifying_key()));
    if let Some(s) = &source {
        what.push_str(&format!(" for source {}", signing::source_text(s)));
    }
    println!("{what}");
    Ok(0)
}

pub fn source_digest(a: SourceDigestArgs) -> Result<u8, Failure> {
    let (digest, manifest) = signing::source_digest(Path::new("."), &a.paths).map_err(usage)?;
    if a.manifest {
        print!("{manifest}");
    }
    println!("{}", signing::source_text(&digest));
    Ok(0)
}
