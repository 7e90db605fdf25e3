//! `chat-client`: the command line, and start-up and exit of the console.
//!
//! Parses the arguments, connects, opens the terminal and runs the console;
//! then restores the terminal and exits with the console's status. The
//! console's behaviour is in `console`; nothing here talks to the server.

mod backoff;
mod command;
mod conn;
mod console;
mod control;
mod format;
mod inbox;
mod incoming;
mod notes;
mod random;
mod request;
mod terminal;

use std::io::Write;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The port of the original's servers.
const DEFAULT_PORT: u16 = 6000;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "chat-client",
    version,
    about = "Console client for the chat-cluster server",
    long_about = "Console client for the chat-cluster server: the original ChatClient's menu and commands, \
                  with line editing, history and an answer to every command.",
    after_help = "Run `chat-client console --help` for the commands available after login.\n\n\
                  Examples:\n  chat-client console\n  chat-client console 127.0.0.1:6000\n  \
                  chat-client console 127.0.0.1 8000\n  \
                  printf '1\\n1\\npw\\nchat:2:hi\\nloginout\\n3\\n' | chat-client console"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Connect and chat interactively: log in or register from the menu, then type commands.
    #[command(after_help = CONSOLE_HELP)]
    Console(ConsoleArgs),
}

const CONSOLE_HELP: &str = "\
Menu: 1 login (userid, userpassword), 2 register (username, userpassword), 3 quit.

Commands after login:
  help                             show the command list
  chat:friendid:message            send a message to a user
  addfriend:friendid               add a friend
  creategroup:groupname:groupdesc  create a group (prints its id)
  addgroup:groupid                 join a group
  groupchat:groupid:message        send a message to a group
  lists                            show your friend and group lists again (with unread counts)
  history:userid[:pagesize]        the latest messages with a user, oldest first (20 by default)
  history:ggroupid[:pagesize]      the same in a group (`history:g5`)
  history:ID:before:MID[:pagesize] the page before message MID (the page's last line says what to type)
  history:ID:after:MID[:pagesize]  the page after message MID
  loginout                         log out and go back to the menu
  block:userid / unblock:userid    refuse (or again accept) a user's chats and friend requests
  blocked                          the users you block and who may write to you
  writers:anyone|writers:friends   who may write to you
  friendrequest:userid             ask a user to be friends (both ways once accepted)
  accept:userid / decline:userid   answer a friend request (requests lists them)
  removefriend:userid              end a friendship, both ways
  requests                         friend requests waiting, both ways
  leavegroup:groupid               leave a group
  kick:groupid:userid              remove a member (the group's owner and admins)
  renamegroup:groupid:groupname    rename a group (owner and admins)
  describegroup:groupid:groupdesc  change a group's description (owner and admins)
  deletegroup:groupid              delete a group (owner; asks to confirm)
  admin:groupid:userid             name an admin (owner); unadmin:groupid:userid takes it back
  passwd                           change your password (asks for the old and the new one)
  deleteaccount                    delete your account (asks for the password and to confirm)
Ctrl-D or Ctrl-C logs out and quits.

When the connection of a logged-in user is lost (the server or its node went
away, the network dropped), the client says so on stderr and reconnects by
itself, with backoff, resuming the session: no message is lost or shown
twice, and a chat that was not acknowledged is sent again (the server stores
it once). Commands typed meanwhile wait for the connection. After
--reconnect-for seconds without it the client gives up and exits 1.

On a terminal you get line editing, history and Tab completion of command
names, and messages arriving while you type are printed above your line.
When stdin is not a terminal (or with --plain) lines are read from stdin one
by one, each request's answer is awaited before the next line is read, nothing
but output is printed (no prompts, no escape codes), and at the end of input
the client logs out and exits with status 0.

Exit status: 0 after quit, Ctrl-C/Ctrl-D or the end of input; 1 when the
server cannot be reached at start, or a lost connection cannot be had back
within --reconnect-for seconds (at the menu the client connects again for the
next login); 2 for bad arguments.";

#[derive(Debug, Args)]
struct ConsoleArgs {
    /// The server: HOST:PORT, or HOST followed by PORT as the original took them
    #[arg(value_name = "HOST:PORT", default_value = "127.0.0.1:6000")]
    server: String,
    /// The port, when the server is given as a bare HOST (`chat-client console 127.0.0.1 6000`)
    #[arg(value_name = "PORT")]
    port: Option<u16>,
    /// Plain line mode even on a terminal: no line editing, no prompts, no escape codes
    #[arg(long)]
    plain: bool,
    /// Seconds to wait for the server's answer to a request
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
    /// Seconds to keep trying to get a lost connection back before giving up (0: do not reconnect)
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    reconnect_for: u64,
    /// Connect with TLS (the server's certificate must name HOST)
    #[arg(long)]
    tls: bool,
    /// PEM file of the CA (or self-signed certificate) to trust with --tls, instead of the system's
    #[arg(long, value_name = "FILE", requires = "tls")]
    ca_file: Option<std::path::PathBuf>,
}

/// `HOST:PORT` to connect to, from the one- or two-argument form.
fn server_address(server: &str, port: Option<u16>) -> Result<String, String> {
    let server = server.trim();
    if server.is_empty() {
        return Err("the server address is empty".to_owned());
    }
    let bare_v6 = server.parse::<Ipv6Addr>().is_ok();
    match port {
        Some(port) if bare_v6 => Ok(format!("[{server}]:{port}")),
        Some(_) if server.contains(':') => {
            Err(format!("`{server}` already has a port; give HOST:PORT or HOST PORT, not both"))
        }
        Some(port) => Ok(format!("{server}:{port}")),
        None if server.parse::<SocketAddr>().is_ok() => Ok(server.to_owned()),
        None if bare_v6 => Ok(format!("[{server}]:{DEFAULT_PORT}")),
        None => match server.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(server.to_owned()),
            Some(_) => Err(format!("`{server}` is not HOST:PORT")),
            None => Ok(format!("{server}:{DEFAULT_PORT}")),
        },
    }
}

fn main() {
    let cli = Cli::parse();
    let Cmd::Console(args) = cli.command;
    let code = console(args);
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

/// Runs the console and returns the exit status.
fn console(args: ConsoleArgs) -> i32 {
    let addr = match server_address(&args.server, args.port) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("command invalid: {e}; example: chat-client console 127.0.0.1:6000");
            return 2;
        }
    };
    let tls = match args.tls.then(|| chat_tls::client_config(args.ca_file.as_deref())).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("command invalid: {e}");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return 1;
        }
    };
    let reply_timeout = Duration::from_secs(args.timeout.max(1));
    let (exit, guard) = runtime.block_on(async {
        let conn = match conn::connect(&addr, CONNECT_TIMEOUT, tls.as_ref()).await {
            Ok(conn) => conn,
            Err(e) => {
                let message = format!("connect server error: {addr}: {e}");
                return (console::Exit { code: 1, message: Some(message) }, None);
            }
        };
        let (input, output, guard) = terminal::open(args.plain);
        let settings = console::Settings {
            addr: addr.clone(),
            connect_timeout: CONNECT_TIMEOUT,
            reply_timeout,
            reconnect_for: Duration::from_secs(args.reconnect_for),
            tls,
        };
        (console::Console::new(settings, conn, input, output).run().await, Some(guard))
    });
    let terminal = guard.is_some_and(|guard| guard.restore());
    if let Some(message) = exit.message {
        let _ = std::io::stdout().flush();
        // The editor may have left the cursor after a half-typed line.
        let newline = if terminal { "\r\n" } else { "" };
        eprintln!("{newline}{message}");
    }
    exit.code
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn both_address_forms() {
        let ok = |s: &str, p| server_address(s, p).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("127.0.0.1:6000", None), "127.0.0.1:6000");
        assert_eq!(ok("127.0.0.1", Some(8000)), "127.0.0.1:8000");
        assert_eq!(ok("localhost", None), "localhost:6000");
        assert_eq!(ok("localhost:7000", None), "localhost:7000");
        assert_eq!(ok("::1", Some(7000)), "[::1]:7000");
        assert_eq!(ok("::1", None), "[::1]:6000");
        assert_eq!(ok("[::1]:7000", None), "[::1]:7000");
        assert!(server_address("127.0.0.1:6000", Some(7000)).is_err());
        assert!(server_address("host:port", None).is_err());
        assert!(server_address(":6000", None).is_err());
        assert!(server_address("", None).is_err());
    }

    #[test]
    fn parses_the_original_two_argument_form() {
        let cli = Cli::try_parse_from(["chat-client", "console", "127.0.0.1", "8000"]).expect("parses");
        let Cmd::Console(args) = cli.command;
        assert_eq!(server_address(&args.server, args.port), Ok("127.0.0.1:8000".to_owned()));
        let cli = Cli::try_parse_from(["chat-client", "console"]).expect("parses");
        let Cmd::Console(args) = cli.command;
        assert_eq!(server_address(&args.server, args.port), Ok("127.0.0.1:6000".to_owned()));
        assert!(Cli::try_parse_from(["chat-client", "console", "h", "notaport"]).is_err());
        assert!(Cli::try_parse_from(["chat-client"]).is_err());
    }
}
