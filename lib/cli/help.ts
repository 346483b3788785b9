/**
 * The help texts of `p2p` and its subcommands (`p2p help [COMMAND]`, `p2p COMMAND --help`), and
 * the version they name. Kept apart so that the dispatcher (`main.ts`) and each command's module
 * stay short; the defaults they quote come from the wings, so the texts cannot drift from them.
 *
 * @example
 * ```ts
 * console.log(helpFor("serve"));
 * ```
 * @module
 */
import denoJson from "../../deno.json" with { type: "json" };
import {
  DEFAULT_LIMITS,
  DEFAULT_MAILBOX_QUOTAS,
  DEFAULT_MAILBOX_SERVICE_LIMITS,
} from "../coordinator.ts";
import { FULL_SCREEN_FROM } from "../ui/full_screen.ts";

/** The version `p2p --version` prints (deno.json's). */
export const VERSION: string = denoJson.version;

/** `p2p --help`. */
export const MAIN_HELP = `p2p ${VERSION} — chat directly with people behind home routers

Usage:
  p2p serve [options]             run the coordinator (who is online)
  p2p chat NAME@HOST[:PORT] [options]
                                  log in as NAME and chat
  p2p nat HOST[:PORT]             what your NAT does, as the coordinator (or --stun) sees it
  p2p id NAME [--create]          show NAME's key fingerprint on this machine
  p2p help [COMMAND]              show help
  p2p --version                   show the version

Run 'p2p COMMAND --help' for a command's options.`;

/** The limits' defaults, for the help text. */
const D = DEFAULT_LIMITS;
const Q = DEFAULT_MAILBOX_QUOTAS;

/** `p2p serve --help`, with the limits' defaults. */
export const SERVE_HELP =
  `Usage: p2p serve [--host ADDR] [--port N] [--tcp-port N] [--peer-timeout SECONDS]
                 [--batch-ms MS] [--data DIR] [--name-ttl DAYS] [--presence everyone|contacts]
                 [--metrics HOST:PORT] [--turn URI --turn-secret-file F [--turn-ttl TIME]]
                 [mailbox options] [cluster options] [limits]

Runs the coordinator: UDP for logins, logouts, heartbeats and presence broadcasts, TCP (same port
number) for the online list. Logs one line per login, logout and expiry on stderr, and a line
when a limit is hit. On SIGINT or SIGTERM it tells the online users (Bye), closes, and exits 0.

It also answers STUN Binding requests (RFC 8489, and RFC 3489's) on its UDP port, so that any
STUN client can check it and chats can use it with --stun.

A name belongs to the key that first brought it online: a login with another key is refused
("name belongs to another key"), and the owner's key takes it over at once from a stale session
of its own (after proving the key). The registrations and the coordinator's own key are kept in
DIR/coordinator.db.

Offline messages: a client leaves a message for someone offline in the mailbox (TCP, port + 1),
sealed to the recipient's key: the coordinator sees whom it is for, its size and the depositor's
address, never the sender's name or the text. It is kept in DIR/mailbox.db until the recipient
fetches and acknowledges it (proving the name's key), or until the TTL.

Options:
  --host ADDR             address to listen on (default 0.0.0.0; :: for IPv6 and IPv4 both)
  --port N                UDP and TCP port (default 7000)
  --tcp-port N            TCP port of the list service, if it must differ
  --peer-timeout SECONDS  drop a user silent this long (default 45)
  --batch-ms MS           longest pause between two batches of presence changes (default 250)
  --data DIR              where the database lives (default $XDG_STATE_HOME/p2p if set, else
                          /var/lib/p2p as root, else ~/.local/state/p2p); created with mode 0700
  --name-ttl DAYS         a name unused this long may be taken by another key (default 180)
  --presence MODE         who sees whose presence: everyone (default; every user sees every
                          other, as the seed does) or contacts (only contacts see each other,
                          learn each other's address and may be introduced; seed-only clients
                          see the users who chose p2p chat --public)
  -h, --help              show this help

Operations:
  --metrics HOST:PORT     serve Prometheus metrics at http://HOST:PORT/metrics; a bare PORT
                          listens on 127.0.0.1 (docs/METRICS.md). Another host is allowed, and
                          logged as public: firewall it
  --turn turn:HOST:PORT   a TURN server (coturn with use-auth-secret): each introduced pair
                          gets time-limited credentials for it, and a pair that cannot go
                          direct relays there instead of through this coordinator
  --turn-secret-file F    the TURN server's static-auth-secret, the file's first line (keep the
                          file readable by the service only)
  --turn-ttl TIME         how long credentials are valid: a number with d, h, m, s (default 1h)

Cluster options (one community on several coordinators over NATS, docs/CLUSTER.md):
  --cluster nats://HOST:PORT  join the community shared by every coordinator naming the same
                          NATS and --community (needs --presence everyone)
  --community NAME        the community (letters, digits, _ and -)
  --member ID             this coordinator's id in it (default a random one per run; give a
                          stable one when NATS permissions are per member)
  --cluster-token-file F  NATS token, read from F (or:)
  --cluster-nkey-file F   NATS nkey seed (SU...), read from F
  --member-timeout SECONDS  drop a member silent this long, with its users (default 5)

Mailbox:
  --mailbox-port N        TCP port of the mailbox (default: --port + 1)
  --no-mailbox            run without a mailbox
  --mailbox-ttl TIME      delete mail unfetched this long: a number with d, h, m, s or ms
                          (default 14d)
  --mailbox-per-user N    messages waiting for one user (default ${Q.perRecipientCount}); beyond:
                          "mailbox full"
  --mailbox-per-user-bytes N
                          bytes waiting for one user (default ${Q.perRecipientBytes})
  --mailbox-per-ip N      messages stored from one address (default ${Q.perSenderCount}): the
                          coordinator does not know senders, only their addresses
  --mailbox-per-ip-bytes N
                          bytes stored from one address (default ${Q.perSenderBytes})
  --mailbox-max N         messages stored in all (default ${Q.totalCount})
  --mailbox-max-bytes N   bytes stored in all (default ${Q.totalBytes})
  --mailbox-max-message BYTES
                          largest sealed message (default and most ${Q.maxMailBytes}); beyond:
                          "too large"
  --mailbox-requests-per-ip N
                          deposits, key lookups and fetches per address per second, twice
                          that in a burst (default ${DEFAULT_MAILBOX_SERVICE_LIMITS.requestsPerSecond})

Limits ("per address": per IPv4 address, or per IPv6 /64):
  --max-users N           users online at once (default ${D.maxUsers})
  --max-pending N         logins waiting for their list fetch; beyond, the oldest is
                          forgotten (default ${D.maxPending})
  --logins-per-ip N       logins, list fetches and introductions per address per second,
                          twice that in a burst (default ${D.loginsPerSecond})
  --datagrams-per-ip N    datagrams per address per second, twice that in a burst
                          (default ${D.datagramsPerSecond})
  --tcp-per-ip N          TCP connections open at once per address (default ${D.tcpPerAddress})
  --max-tcp N             TCP connections open at once (default ${D.maxTcp})
  --tcp-idle SECONDS      close a TCP connection idle this long (default ${D.tcpIdleMs / 1000})
  --max-datagram BYTES    longest datagram accepted (default ${D.maxDatagramBytes})
  --max-line BYTES        longest line of the coordinator protocol (login, heartbeat…),
                          and most bytes read from a TCP connection (default and most
                          ${D.maxLineBytes}); chat messages go from peer to peer and are
                          not limited by it
  --names-per-ip N        names online at once per address (default ${D.namesPerAddress}): a
                          household or an office behind one NAT has a few dozen online
  --new-names-per-ip-per-day N
                          distinct names an address may bring online in any 24 hours
                          (default ${D.newNamesPerAddressPerDay}): people keep their names, a hoarder makes
                          thousands
  --relay-bytes-per-user N
  --relay-packets-per-user N
                          bytes and packets per second one user may have relayed, to
                          everyone together (default ${D.relayBytesPerUser} and ${D.relayPacketsPerUser}: what one
                          introduced pair may; chat is small); 8 s of bytes and 4 s of
                          packets at once
  --relay-bytes-per-ip N
  --relay-packets-per-ip N
                          the same for all the users of one address together (default
                          ${D.relayBytesPerAddress} and ${D.relayPacketsPerAddress}: two users' worth, and no more packets
                          than --datagrams-per-ip)
  --relay-file-limit SIZE largest file transfer the relay carries (default 1M; e.g. 512K,
                          0 for no files): told to clients, which refuse larger ones between
                          peers with no direct path; enforced as a per-pair volume of
                          1.25 x SIZE + 256 KiB relayed, refilled over 10 minutes`;

/** `p2p nat --help`. */
export const NAT_HELP =
  `Usage: p2p nat [HOST[:PORT]] [--stun HOST[:PORT]]... [--json] [--no-port-mapping]

Asks the coordinator at HOST:PORT (and its second port, PORT+1), and any STUN servers given,
which public endpoint each sees for one local socket, and says what kind of NAT you are behind
and what that means for direct connections. Give a coordinator, STUN servers, or both. Then asks
your router (the default gateway) for a mapping of that socket's port, by PCP, NAT-PMP, then
UPnP-IGD, reports what it offers (protocol, external endpoint, lifetime), and deletes it again.

Options:
  --stun HOST[:PORT]    also ask this STUN server (RFC 8489; default port 3478, [v6] for an
                        IPv6 address); may be given several times; p2p serve answers STUN too
  --json                the report as one JSON object, for scripts
  --no-port-mapping     do not ask the router
  -h, --help            show this help`;

/** `p2p id --help`. */
export const ID_HELP = `Usage: p2p id NAME [--create] [--config DIR]

Shows the fingerprint of NAME's key on this machine. Compare it with what your contacts see
(/fingerprint NAME in their chat) to make sure nobody is in between. A name without a key here
is an error (a typo should not make a key); the key is made at its first 'p2p chat', or now
with --create.

Options:
  --create              make NAME's key if there is none yet
  --config DIR          where keys live (default $XDG_CONFIG_HOME/p2p or ~/.config/p2p)
  -h, --help            show this help`;

/** `p2p chat --help`: options and the commands typed in the chat. */
export const CHAT_HELP =
  `Usage: p2p chat NAME@HOST[:PORT] [--json] [--keepalive SECONDS] [--bind ADDR[:PORT]]
                [--config DIR] [--accept anyone|known] [--data DIR] [--passphrase]
                [--no-history] [--plain] [--public] [--stun HOST[:PORT]]...
                [--no-port-mapping] [--downloads DIR] [--max-file-size SIZE]

Logs in to the coordinator at HOST:PORT (default port 7000) as NAME, shows who is online, and
sends messages directly to the other users.

Several coordinators of one community (p2p serve --cluster), comma-separated
(alice@c1:7000,c2:7000): the chat logs in on the first that answers, and moves to the next when
its coordinator is lost.

Messages are end-to-end encrypted (Noise XX) and acknowledged; a peer's key is pinned the first
time you talk, and a changed key stops sending until you accept it.

Every message sent and received is kept in your history, encrypted, under
$XDG_DATA_HOME/p2p (default ~/.local/share/p2p); its key is beside your identity, or comes from
a passphrase. The chat starts with the last lines with each contact. Messages not delivered when
the chat stops stay pending and are sent at the next start, once the recipient is online.

Commands (typed, or one per line on stdin; command words and names in any case):
  /chat USER            talk to USER: plain lines go to them (alias /query)
  /chat, /all           back to the everyone view
  /msg USER TEXT        send TEXT to USER
  /r TEXT               reply to whoever wrote last
  /all TEXT             send TEXT to everyone online
  /who                  who is online, the path to each, and unread messages
  /fingerprint [USER]   show USER's key fingerprint and your safety number (or yours)
  /trust USER           accept USER's changed key
  /add USER [NOTE]      ask USER to be your contact (through the coordinator, kept there while
                        USER is offline); once both agree you see each other online
  /accept USER          accept USER's contact request (/decline USER: USER is not told)
  /remove USER          remove contact USER (/block USER: also drop its requests; /unblock)
  /contacts             your contacts, online or when last seen, and requests waiting
  /history USER [N]     show the last N (default 20) messages with USER
  /search TEXT          show the messages that contain TEXT
  /send USER PATH...    offer files (directories: their whole tree) to USER, peer to peer
  /accept [ID] [DIR]    take file offer ID (default the latest) into DIR (default --downloads)
  /decline [ID]         refuse file offer ID; /files lists transfers; /cancel ID stops one
  /help                 show the commands
  /quit                 log out and leave (also Ctrl-C, end of input, SIGTERM, SIGHUP)
Keys: Tab completes commands and names; Up/Down recall earlier lines; //TEXT sends /TEXT.

Options:
  --json                JSON Lines on stdout (one object per event), for scripts
  --plain               line by line, even in a terminal big enough for the full screen
                        (from ${FULL_SCREEN_FROM.columns}×${FULL_SCREEN_FROM.rows}: the conversation, the people online beside it,
                        a status row and the input row)
  --keepalive SECONDS   heartbeat interval (default 10)
  --bind ADDR[:PORT]    local address and port to use (default any)
  --config DIR          where keys live (default $XDG_CONFIG_HOME/p2p or ~/.config/p2p)
  --accept anyone|known who may start a conversation with you: anyone online (default; at most
                        30 new people at once, then 10 a minute), or only known users (whose key
                        you pinned when you talked before) and those you write to
  --public              on a coordinator run with --presence contacts, be listed to seed-only
                        clients (other users see you only once you are contacts)
  --stun HOST[:PORT]    also ask this STUN server (default port 3478) what your NAT does, besides
                        the coordinator's second port (for when that port is blocked or
                        missing); may be given several times
  --data DIR            where the history lives (default $XDG_DATA_HOME/p2p or
                        ~/.local/share/p2p)
  --passphrase          ask for a passphrase to encrypt the history with (on the terminal;
                        scripts set P2P_PASSPHRASE); a history made with one always needs it
  --no-history          keep no history: nothing is written, nothing pending survives a restart
  --no-port-mapping     do not ask your router to map the chat port (PCP, NAT-PMP); by default
                        a mapping is asked for, offered to peers, renewed, and deleted at exit
  --downloads DIR       where accepted files go (default $XDG_DOWNLOAD_DIR or ~/Downloads/p2p)
  --max-file-size SIZE  refuse offers of larger files, e.g. 500M, 4G (default 4G)
  -h, --help            show this help`;

/** The help of `command` (`serve`, `chat`, `nat`, `id`), or the main help for anything else. */
export function helpFor(command: string | undefined): string {
  const texts: Record<string, string> = {
    serve: SERVE_HELP,
    chat: CHAT_HELP,
    nat: NAT_HELP,
    id: ID_HELP,
  };
  return texts[command ?? ""] ?? MAIN_HELP;
}
