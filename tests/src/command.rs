//! The `govpulse` command run as a person runs it, for the tests of the command itself
//! (`services/cli/tests`): child processes that never outlive a test, whose output is always
//! drained, and `govpulse serve` with the addresses it prints.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, Output, Stdio},
    sync::mpsc::{self, RecvTimeoutError},
    time::{Duration, Instant},
};

/// A child's standard output or error, read to its end by a thread of its own and handed
/// over line by line. However little of it a test reads, the child never blocks on a full
/// pipe nor writes into a closed one (a `serve` whose pipe was dropped after its address
/// lines once died writing the next line).
#[derive(Debug)]
pub struct Lines(mpsc::Receiver<String>);

impl Lines {
    /// Starts reading `pipe` to its end.
    pub fn drain(pipe: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Split on bytes: a line that is not UTF-8 must not end the reading.
            for line in BufReader::new(pipe).split(b'\n').map_while(Result::ok) {
                // The test may have stopped listening; the pipe is read to its end anyway.
                let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
            }
        });
        Lines(rx)
    }

    /// The first `n` lines of `pipe`, which is then closed, as `| head -n` does; the lines
    /// come once it is closed.
    pub fn head(pipe: impl Read + Send + 'static, n: usize) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The reader, and with it the pipe, is dropped at the end of this statement.
            let lines: Vec<String> = BufReader::new(pipe)
                .lines()
                .take(n)
                .map_while(Result::ok)
                .collect();
            for line in lines {
                let _ = tx.send(line);
            }
        });
        Lines(rx)
    }

    /// The next line, or `None` once the output has ended; panics, naming `what` it waited
    /// for, when nothing came before `deadline`.
    pub fn next_before(&self, deadline: Instant, what: &str) -> Option<String> {
        match self
            .0
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("timed out waiting for {what}"),
        }
    }

    /// The rest of the output, each line ending in `\n`, once it has ended.
    pub fn to_end(&self, deadline: Instant, what: &str) -> String {
        let mut rest = String::new();
        while let Some(line) = self.next_before(deadline, what) {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    }
}

/// A child process of the test, killed (and reaped) when dropped: a failing test leaves
/// nothing running.
#[derive(Debug)]
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Standard output or error as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Whether `text` (a line, a table) shows every one of `parts`.
pub fn shows(text: &str, parts: &[&str]) -> bool {
    parts.iter().all(|part| text.contains(part))
}

/// Asserts that `output` (standard output or error) says `expected`, showing all of it when
/// it does not.
#[track_caller]
pub fn assert_says(output: &[u8], expected: &str) {
    let said = text(output);
    assert!(said.contains(expected), "{expected:?} not in:\n{said}");
}

/// Asserts that `submitted`, a `govpulse submit`, ended with the summary `summary`
/// (`accepted 2, duplicate 0, rejected 0`); otherwise shows `context`, then its output and
/// its errors.
#[track_caller]
pub fn assert_submitted(submitted: &Output, summary: &str, context: &str) {
    assert!(
        text(&submitted.stdout).ends_with(&format!("{summary}\n")),
        "{context}{}{}",
        text(&submitted.stdout),
        text(&submitted.stderr)
    );
}

/// A `govpulse serve` process with the addresses it printed; killed when dropped.
#[derive(Debug)]
pub struct Serve {
    /// The process.
    pub process: Running,
    /// ingest's URL.
    pub ingest: String,
    /// aggregate's URL.
    pub aggregate: String,
    /// ranking's URL.
    pub ranking: String,
}

impl Serve {
    /// Runs `govpulse` (the binary at `bin`) `serve --ports 0 0 0` with `args` and `env`,
    /// and waits for its addresses (`scheme` is `http` or `https`). Its output goes on being
    /// drained; should it print no address, the panic shows its standard error.
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)], scheme: &str) -> Serve {
        let mut child = Command::new(bin)
            .arg("serve")
            .args(["--ports", "0", "0", "0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("govpulse serve starts");
        let stdout = Lines::drain(child.stdout.take().expect("stdout is piped"));
        let stderr = Lines::drain(child.stderr.take().expect("stderr is piped"));
        let deadline = Instant::now() + Duration::from_secs(60);
        Serve::listening(Running(child), scheme, |what| {
            let line = stdout.next_before(deadline, what);
            if line.is_none() {
                let why = stderr.to_end(Instant::now() + Duration::from_secs(5), "stderr");
                panic!("serve ended before {what}; its standard error:\n{why}");
            }
            line
        })
    }

    /// A started `serve` whose address lines (`ingest`, `aggregate`, `ranking`, in that
    /// order) `next_line` gives, `None` once its output has ended.
    pub fn listening(
        process: Running,
        scheme: &str,
        mut next_line: impl FnMut(&str) -> Option<String>,
    ) -> Serve {
        let mut addr = |name: &str| {
            let what = format!("serve's {name} address line");
            let line = next_line(&what).unwrap_or_else(|| panic!("serve ended before {what}"));
            let (label, addr) = line.split_once(char::is_whitespace).expect("`name addr`");
            assert_eq!(label, name, "{line}");
            format!("{scheme}://{}", addr.trim())
        };
        let (ingest, aggregate, ranking) = (addr("ingest"), addr("aggregate"), addr("ranking"));
        Serve {
            process,
            ingest,
            aggregate,
            ranking,
        }
    }

    /// Runs `govpulse` (at `bin`) with `args`, then the option naming this serve's `service`
    /// (`--ingest`, `--aggregate` or `--ranking` and its URL).
    pub fn call(&self, bin: &str, args: &[&str], service: &str) -> Output {
        let url = match service {
            "ingest" => &self.ingest,
            "aggregate" => &self.aggregate,
            _ => &self.ranking,
        };
        Command::new(bin)
            .args(args)
            .args([&format!("--{service}"), url.as_str()])
            .output()
            .expect("govpulse runs")
    }
}
