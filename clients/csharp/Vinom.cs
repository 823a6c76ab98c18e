// Vinom.cs: the C# binding of vinom's native client core, by P/Invoke over
// its C ABI (clients/cpp/include/vinom.h, the shared library libvinom.so /
// vinom.dll / libvinom.dylib). One file, no dependency beyond the base class
// library, so a Unity package can take it as it is (docs/clients.md).
//
// The game owns the socket and the clock; the Client owns the protocol:
//
//   using (var token = ConnectToken.Parse(matchFoundTokenJson))
//   using (var client = new Client(token, now)) {
//       // each frame:
//       client.Receive(datagram, length, now);  // for each datagram that arrived
//       client.Update(now);
//       byte[] outgoing;
//       while (client.TryTakeDatagram(out outgoing)) socket.Send(outgoing);
//       ClientEvent e;
//       while (client.TryPoll(out e)) { ... e.Kind, e.Channel, e.Message, e.Json ... }
//   }
//
// The lobby over TLS is the same shape: the game calls Update(now) each frame
// and reads events; the connect token of its match_found starts the Client:
//
//   using (var lobby = new Lobby("play.example.com", 7350, null, null, now)) {
//       lobby.Hello("Ada");                      // waits for the connection
//       // each frame:
//       lobby.Update(now);
//       LobbyEvent e;
//       while (lobby.TryPoll(out e)) {
//           if (e.Kind == LobbyEventKind.Welcome) lobby.Queue("tictactoe");
//           if (e.Kind == LobbyEventKind.MatchFound) token = ConnectToken.Parse(lobby.Token);
//       }
//   }
//
// Errors of a call come back as a VinomException with the library's status;
// nothing a host, a lobby or the network sends throws (a bad datagram is
// dropped, a bad lobby frame is an Error event).
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;

namespace Vinom
{
    /// <summary>The library's statuses (vinom.h's vinom_status).</summary>
    public enum Status
    {
        Ok = 0, Truncated = 1, BadSize = 2, BadType = 3, BadField = 4, AuthFailed = 5,
        Replayed = 6, BadJson = 7, Crypto = 8, Unexpected = 9, BufferTooSmall = 10,
        InvalidArgument = 11, NoMemory = 12, UnknownBaseline = 13, ChecksumMismatch = 14,
        Stale = 15, QueueFull = 16, Ended = 17,
    }

    /// <summary>vinom.h's vinom_log_level.</summary>
    public enum LogLevel { Debug = 0, Info = 1, Warning = 2, Error = 3, Off = 4 }

    public enum SessionState { Requesting = 0, Responding = 1, Connected = 2, Closed = 3, Failed = 4 }

    /// <summary>Ended: the match ended ("match_ended") or the host's port
    /// closed ("host_closed"), once, whichever came first (Client.Ended).</summary>
    public enum EventKind { None = 0, Welcome = 1, Message = 2, Disconnected = 3, Failed = 4, Ended = 5 }

    public sealed class VinomException : Exception
    {
        public readonly Status Status;

        public VinomException(Status status, string what)
            : base(what + ": " + Library.StatusName(status))
        {
            Status = status;
        }
    }

    /// <summary>What Client.TryPoll read.</summary>
    public struct ClientEvent
    {
        public EventKind Kind;
        /// <summary>Message: 0 unreliable, 1 reliable ordered.</summary>
        public int Channel;
        /// <summary>Message: one msgpack value (docs/protocol.md section 14), or a
        /// snap (first byte 0xc1, no msgpack: Snapshots.Receive reads it, Json
        /// cannot).</summary>
        public byte[] Message;
        /// <summary>Failed: "timeout" or "denied"; Ended: "match_ended" or "host_closed".</summary>
        public string Reason;

        /// <summary>The message as JSON text.</summary>
        public string Json { get { return Messages.ToJson(Message); } }
    }

    public sealed class Host
    {
        public readonly string Address;
        public readonly int Port;

        public Host(string address, int port)
        {
            Address = address;
            Port = port;
        }
    }

    /// <summary>The library's versions.</summary>
    public static class Library
    {
        /// <summary>The ABI this binding was written against (VINOM_ABI_VERSION).</summary>
        public const uint BindingAbiVersion = 1;

        public static uint AbiVersion { get { return Native.vinom_abi_version(); } }
        /// <summary>The packet version (connect tokens and packets: 3).</summary>
        public static uint ProtocolVersion { get { return Native.vinom_protocol_version(); } }
        /// <summary>The game protocol the lobby's hello states (4: one snap form).</summary>
        public static uint GameProtocol { get { return Native.vinom_game_protocol(); } }
        public static string Version { get { return Marshal.PtrToStringAnsi(Native.vinom_version_string()); } }

        public static string StatusName(Status status)
        {
            return Marshal.PtrToStringAnsi(Native.vinom_status_name((int)status));
        }

        /// <summary>Every line the library writes from `level` up goes to `callback`
        /// (null: stderr; LogLevel.Off, the default: nowhere); called on the
        /// thread that called the library (vinom_set_log).</summary>
        public static void SetLog(Action<LogLevel, string> callback, LogLevel level)
        {
            log = callback;
            Native.vinom_set_log(callback == null ? null : forward, IntPtr.Zero, (int)level);
        }

        private static Action<LogLevel, string> log;
        private static readonly Native.LogFn forward = Forward;  // kept alive: the library holds it

        [AOT.MonoPInvokeCallback(typeof(Native.LogFn))]
        private static void Forward(IntPtr userData, int level, IntPtr line)
        {
            var to = log;
            if (to != null) to((LogLevel)level, Text.Of(line));
        }

        internal static void Check(int status, string what)
        {
            if (status != 0) throw new VinomException((Status)status, what);
        }

        /// <summary>A call that writes into `output` and says how many bytes it
        /// wrote, or needs (BufferTooSmall).</summary>
        internal delegate int Fill(byte[] output, out UIntPtr length);

        /// <summary>`fill`'s status, `buffer` grown and the call made again while it
        /// is BufferTooSmall; `length`: the bytes written (or needed).</summary>
        internal static int Filled(ref byte[] buffer, Fill fill, out int length)
        {
            while (true)
            {
                UIntPtr n;
                int status = fill(buffer, out n);
                length = (int)n.ToUInt64();
                if (status != (int)Status.BufferTooSmall) return status;
                buffer = new byte[length];
            }
        }
    }

    /// <summary>A connect token: the "token" object of the lobby's match_found.</summary>
    public sealed class ConnectToken : IDisposable
    {
        internal readonly TokenHandle Handle;

        private ConnectToken(TokenHandle handle) { Handle = handle; }

        public static ConnectToken Parse(string json)
        {
            if (Library.AbiVersion != Library.BindingAbiVersion)
                throw new InvalidOperationException(
                    "libvinom speaks ABI " + Library.AbiVersion + ", this binding " +
                    Library.BindingAbiVersion);
            byte[] bytes = Encoding.UTF8.GetBytes(json);
            TokenHandle handle;
            Library.Check(Native.vinom_token_parse(bytes, (UIntPtr)bytes.Length, out handle),
                          "not a connect token");
            return new ConnectToken(handle);
        }

        public IList<Host> Hosts
        {
            get
            {
                var hosts = new List<Host>();
                ulong count = Native.vinom_token_host_count(Handle).ToUInt64();
                for (ulong i = 0; i < count; ++i)
                {
                    IntPtr address;
                    ushort port;
                    Library.Check(Native.vinom_token_host(Handle, (UIntPtr)i, out address, out port),
                                  "vinom_token_host");
                    hosts.Add(new Host(Marshal.PtrToStringAnsi(address), port));
                }
                return hosts;
            }
        }

        public uint TimeoutMs { get { return Native.vinom_token_timeout_ms(Handle); } }

        public void Dispose() { Handle.Dispose(); }
    }

    /// <summary>One UDP session: the packet layer, section 8's timers and a
    /// minimal reliability endpoint (docs/clients.md). `now` is seconds on
    /// any monotonic clock, the same for every call.</summary>
    public sealed class Client : IDisposable
    {
        private readonly ClientHandle handle;
        private readonly byte[] datagram = new byte[MaxDatagram];
        private byte[] message = new byte[MaxDatagram];
        private readonly byte[] received = new byte[MaxDatagram];

        public const int MaxDatagram = 1200;   // VINOM_MAX_DATAGRAM
        public const int MaxMessage = 1162;    // VINOM_MAX_MESSAGE: unfragmented, unreliable
        public const int MaxReliableMessage = 2048;  // VINOM_MAX_RELIABLE_MESSAGE

        /// <param name="attemptTimeout">Seconds to wait for the welcome (0: the
        /// token's timeout + 1 s, at least 5 s).</param>
        public Client(ConnectToken token, double now, double attemptTimeout = 0)
        {
            // The client's first sequence: random below 2^48 (docs/protocol.md 8).
            var random = new byte[8];
            using (var rng = RandomNumberGenerator.Create()) rng.GetBytes(random);
            ulong first = BitConverter.ToUInt64(random, 0) & ((1UL << 48) - 1);
            Library.Check(Native.vinom_client_new(token.Handle, first, now, attemptTimeout, out handle),
                          "vinom_client_new");
        }

        public SessionState State { get { return (SessionState)Native.vinom_client_state(handle); } }
        public ulong SessionId { get { return Native.vinom_client_session_id(handle); } }
        public double ServerTime { get { return Native.vinom_client_server_time(handle); } }
        /// <summary>Reliable messages sent and not acked yet.</summary>
        public int Pending { get { return (int)Native.vinom_client_pending(handle).ToUInt64(); } }
        public string Failure { get { return Marshal.PtrToStringAnsi(Native.vinom_client_failure(handle)); } }
        /// <summary>"" before the session's end, then "match_ended" or "host_closed".</summary>
        public string Ended { get { return Marshal.PtrToStringAnsi(Native.vinom_client_ended(handle)); } }

        /// <summary>The game's socket said the host's port is closed (a connected
        /// socket's SocketError.ConnectionRefused, or ConnectionReset on Windows):
        /// the session ends with one Ended event, "host_closed", unless it ended
        /// already; nothing more is sent.</summary>
        public void HostClosed() { Library.Check(Native.vinom_client_host_closed(handle), "vinom_client_host_closed"); }

        /// <summary>Every datagram waiting on `socket` (non-blocking, connected to
        /// the token's host) handed to Receive, into one buffer kept for it. A
        /// refusal is HostClosed; another socket error leaves the rest to the
        /// timers, as a datagram lost. Never throws a SocketException.</summary>
        public void ReceiveFrom(Socket socket, double now)
        {
            while (true)
            {
                SocketError error;
                int n;
                try
                {
                    if (socket.Available <= 0) return;
                    n = socket.Receive(received, 0, received.Length, SocketFlags.None, out error);
                }
                catch (SocketException e) { error = e.SocketErrorCode; n = 0; }
                if (error != SocketError.Success)
                {
                    if (Refused(error)) HostClosed();
                    return;
                }
                Native.vinom_client_receive(handle, received, (UIntPtr)n, now);  // a bad one is dropped
            }
        }

        /// <summary>Every datagram due sent on `socket` (connected to the token's
        /// host), from the client's own buffer. A refusal is HostClosed (the
        /// rest is dropped); another error loses the datagram, as the network
        /// may. Never throws a SocketException.</summary>
        public void SendTo(Socket socket)
        {
            while (true)
            {
                UIntPtr length;
                Library.Check(Native.vinom_client_datagram(handle, datagram, (UIntPtr)datagram.Length, out length),
                              "vinom_client_datagram");
                int n = (int)length.ToUInt64();
                if (n == 0) return;
                SocketError error;
                try { socket.Send(datagram, 0, n, SocketFlags.None, out error); }
                catch (SocketException e) { error = e.SocketErrorCode; }
                if (Refused(error)) HostClosed();
            }
        }

        private static bool Refused(SocketError error)
        {
            // Linux and macOS say refused; Winsock says reset for a UDP port unreachable.
            return error == SocketError.ConnectionRefused || error == SocketError.ConnectionReset;
        }

        /// <summary>A datagram from the host; false when it was dropped (forged,
        /// replayed, or not fitting the session's state).</summary>
        public bool Receive(byte[] data, int length, double now)
        {
            if (length < 0 || length > data.Length) throw new ArgumentOutOfRangeException("length");
            return Native.vinom_client_receive(handle, data, (UIntPtr)length, now) == 0;
        }

        public void Update(double now)
        {
            Library.Check(Native.vinom_client_update(handle, now), "vinom_client_update");
        }

        /// <summary>The next datagram to send to the token's host, if one is due.</summary>
        public bool TryTakeDatagram(out byte[] outgoing)
        {
            UIntPtr length;
            Library.Check(Native.vinom_client_datagram(handle, datagram, (UIntPtr)datagram.Length, out length),
                          "vinom_client_datagram");
            int n = (int)length.ToUInt64();
            outgoing = null;
            if (n == 0) return false;
            outgoing = new byte[n];
            Buffer.BlockCopy(datagram, 0, outgoing, 0, n);
            return true;
        }

        /// <summary>The next datagram to send into `buffer` (MaxDatagram bytes
        /// at least) without allocating: its length, 0 when none is due.</summary>
        public int TakeDatagram(byte[] buffer)
        {
            UIntPtr length;
            Library.Check(Native.vinom_client_datagram(handle, buffer, (UIntPtr)buffer.Length, out length),
                          "vinom_client_datagram");
            return (int)length.ToUInt64();
        }

        /// <summary>The next event without allocating (a game's frame loop): its
        /// kind (None: no event), a Message's channel and bytes in `buffer`
        /// (`length` of them; Messages.ToJson or Snapshots.Receive read them), a
        /// Failed or Ended event's reason in Failure or Ended. A message larger
        /// than `buffer` stays first in line: None, `length` the size needed
        /// (at most MaxReliableMessage for a reliable one, 16 KiB for a snap).</summary>
        public EventKind Poll(byte[] buffer, out int channel, out int length)
        {
            int kind;
            UIntPtr n;
            int status = Native.vinom_client_poll(handle, out kind, out channel, buffer,
                                                  (UIntPtr)buffer.Length, out n);
            length = (int)n.ToUInt64();
            if (status == (int)Status.BufferTooSmall) return EventKind.None;
            Library.Check(status, "vinom_client_poll");
            return (EventKind)kind;
        }

        /// <summary>The next event, if any. A message is a new array (Poll does
        /// without); no event allocates nothing.</summary>
        public bool TryPoll(out ClientEvent e)
        {
            e = new ClientEvent();
            int channel, length;
            EventKind kind = Poll(message, out channel, out length);
            // A large message is polled again into a larger buffer: it stays first in line.
            while (kind == EventKind.None && length > message.Length)
            {
                message = new byte[length];
                kind = Poll(message, out channel, out length);
            }
            e.Kind = kind;
            if (e.Kind == EventKind.None) return false;
            e.Channel = channel;
            if (e.Kind == EventKind.Message)
            {
                e.Message = new byte[length];
                Buffer.BlockCopy(message, 0, e.Message, 0, length);
            }
            if (e.Kind == EventKind.Failed) e.Reason = Failure;
            if (e.Kind == EventKind.Ended) e.Reason = Ended;
            return true;
        }

        /// <summary>One msgpack message on the reliable channel (connected only), 1
        /// to MaxReliableMessage bytes; one over MaxMessage goes in fragments.
        /// VinomException QueueFull, nothing queued, while 1 MiB awaits the host's acks.
        /// False, nothing sent and no exception, once the session has Ended.</summary>
        public bool Send(byte[] msgpack)
        {
            int status = Native.vinom_client_send(handle, msgpack, (UIntPtr)msgpack.Length);
            if (status == (int)Status.Ended) return false;
            Library.Check(status, "vinom_client_send");
            return true;
        }

        /// <summary>One message, given as JSON text, on the reliable channel.</summary>
        public bool SendJson(string json) { return Send(Messages.FromJson(json)); }

        /// <summary>One msgpack message on the unreliable channel (a real-time
        /// game's input: Inputs.Message), sent once by the next Update.</summary>
        public bool SendUnreliable(byte[] msgpack)
        {
            int status = Native.vinom_client_send_unreliable(handle, msgpack, (UIntPtr)msgpack.Length);
            if (status == (int)Status.Ended) return false;  // as Send
            Library.Check(status, "vinom_client_send_unreliable");
            return true;
        }

        /// <summary>Ends the session: the next datagrams are its disconnects.</summary>
        public void Close() { Library.Check(Native.vinom_client_close(handle), "vinom_client_close"); }

        public void Dispose() { handle.Dispose(); }
    }

    public enum LobbyEventKind
    {
        None = 0, Connected = 1, Welcome = 2, Queued = 3, Room = 4, MatchFound = 5, Reply = 6,
        Error = 7, Closed = 8, Failed = 9,
    }

    public enum LobbyState { Connecting = 0, Handshaking = 1, Open = 2, Closed = 3, Failed = 4 }

    /// <summary>What Lobby.TryPoll read.</summary>
    public struct LobbyEvent
    {
        public LobbyEventKind Kind;
        /// <summary>The id of the request it answers (0: none).</summary>
        public long Id;
        /// <summary>The lobby's frame as JSON ("" for Connected, Closed and Failed).</summary>
        public string Json;
    }

    /// <summary>The lobby over TLS (docs/lobby.md): non-blocking, no thread; the
    /// certificate is verified against `trust` (a PEM file of the CA or of the
    /// lobby's certificate; null: the system's CAs). Requests made before the
    /// connection is up wait for it, and return their frame's id.</summary>
    public sealed class Lobby : IDisposable
    {
        private readonly LobbyHandle handle;
        private byte[] frame = new byte[4096];

        /// <param name="serverName">The name the certificate must carry (null:
        /// "localhost" for a loopback address, else `host`).</param>
        /// <param name="timeout">Seconds to be connected and verified (0: 10).</param>
        public Lobby(string host, int port, string trust, string serverName, double now,
                     double timeout = 0)
        {
            if (port < 1 || port > 65535) throw new ArgumentOutOfRangeException("port");
            Library.Check(Native.vinom_lobby_new(Text.Z(host), (ushort)port, Text.Z(trust),
                                                 Text.Z(serverName), now, timeout, out handle),
                          "vinom_lobby_new");
        }

        public LobbyState State { get { return (LobbyState)Native.vinom_lobby_state(handle); } }
        /// <summary>The last welcome's player id and reconnection secret.</summary>
        public string PlayerId { get { return Text.Of(Native.vinom_lobby_player_id(handle)); } }
        public string Secret { get { return Text.Of(Native.vinom_lobby_secret(handle)); } }
        /// <summary>The last match_found's connect token, as JSON (for ConnectToken.Parse).</summary>
        public string Token { get { return Text.Of(Native.vinom_lobby_token(handle)); } }
        /// <summary>The last Error event's code ("queue_full", "bad_frame", ...).</summary>
        public string ErrorCode { get { return Text.Of(Native.vinom_lobby_error_code(handle)); } }
        /// <summary>Why the lobby Failed ("connect: ...", "tls: ...", "timeout").</summary>
        public string Failure { get { return Text.Of(Native.vinom_lobby_failure(handle)); } }

        /// <summary>Seconds an open connection may go without a byte from the lobby
        /// before it fails "idle: ..." (default 70; 0 or less: forever).</summary>
        public double IdleTimeout
        {
            set { Library.Check(Native.vinom_lobby_set_idle_timeout(handle, value), "vinom_lobby_set_idle_timeout"); }
        }

        public void Update(double now)
        {
            Library.Check(Native.vinom_lobby_update(handle, now), "vinom_lobby_update");
        }

        /// <summary>The next event, if any.</summary>
        public bool TryPoll(out LobbyEvent e)
        {
            e = new LobbyEvent();
            int kind = 0, length;
            long id = 0;
            Library.Check(Library.Filled(ref frame, (byte[] output, out UIntPtr n) =>
                Native.vinom_lobby_poll(handle, out kind, out id, output, (UIntPtr)output.Length,
                                        out n), out length), "vinom_lobby_poll");
            e.Kind = (LobbyEventKind)kind;
            if (e.Kind == LobbyEventKind.None) return false;
            e.Id = id;
            e.Json = Encoding.UTF8.GetString(frame, 0, length);
            return true;
        }

        /// <param name="authJson">The credentials object as JSON (null: a guest).</param>
        public long Hello(string name, string authJson = null)
        {
            long id;
            Library.Check(Native.vinom_lobby_hello(handle, Text.Z(name), Text.Z(authJson), out id),
                          "vinom_lobby_hello");
            return id;
        }

        /// <param name="queue">"normal" (null) or "ranked".</param>
        public long Queue(string game, string queue = null)
        {
            long id;
            Library.Check(Native.vinom_lobby_queue(handle, Text.Z(game), Text.Z(queue), out id),
                          "vinom_lobby_queue");
            return id;
        }

        public long Cancel()
        {
            long id;
            Library.Check(Native.vinom_lobby_cancel(handle, out id), "vinom_lobby_cancel");
            return id;
        }

        public long CreateRoom(string game, bool isPrivate = false)
        {
            long id;
            Library.Check(Native.vinom_lobby_create_room(handle, Text.Z(game), isPrivate ? 1 : 0, out id),
                          "vinom_lobby_create_room");
            return id;
        }

        public long JoinRoom(string code)
        {
            long id;
            Library.Check(Native.vinom_lobby_join_room(handle, Text.Z(code), out id),
                          "vinom_lobby_join_room");
            return id;
        }

        /// <summary>Fills the room's next seat with the game's bot.</summary>
        public long AddBot()
        {
            long id;
            Library.Check(Native.vinom_lobby_add_bot(handle, out id), "vinom_lobby_add_bot");
            return id;
        }

        /// <summary>A fresh connect token for the player's seat in their match.</summary>
        public long Reconnect(string playerId, string secret, string authJson = null)
        {
            long id;
            Library.Check(Native.vinom_lobby_reconnect(handle, Text.Z(playerId), Text.Z(secret),
                                                       Text.Z(authJson), out id),
                          "vinom_lobby_reconnect");
            return id;
        }

        public void Close() { Library.Check(Native.vinom_lobby_close(handle), "vinom_lobby_close"); }

        public void Dispose() { handle.Dispose(); }
    }

    // Strings to and from the C ABI: NUL-terminated UTF-8 both ways.
    internal static class Text
    {
        internal static byte[] Z(string text)
        {
            if (text == null) return null;
            byte[] bytes = Encoding.UTF8.GetBytes(text);
            var z = new byte[bytes.Length + 1];
            Buffer.BlockCopy(bytes, 0, z, 0, bytes.Length);
            return z;
        }

        internal static string Of(IntPtr text)
        {
            if (text == IntPtr.Zero) return "";
            int n = 0;
            while (Marshal.ReadByte(text, n) != 0) ++n;
            var bytes = new byte[n];
            Marshal.Copy(text, bytes, 0, n);
            return Encoding.UTF8.GetString(bytes);
        }
    }

    /// <summary>A real-time player's snaps rebuilt (docs/protocol.md 16): delta
    /// decoding against the views held, the checksum when the host sends it; with
    /// the game's view schema (ReadSchema), schema snapshots too (16.8).</summary>
    public sealed class Snapshots : IDisposable
    {
        private readonly SnapshotsHandle handle;
        private byte[] text = new byte[4096];

        /// <param name="rulesJson">The welcome's "q" as JSON (null: none).</param>
        public Snapshots(string rulesJson)
        {
            byte[] rules = rulesJson == null ? null : Encoding.UTF8.GetBytes(rulesJson);
            Library.Check(Native.vinom_snapshots_new(rules, (UIntPtr)(rules == null ? 0 : rules.Length),
                                                     out handle),
                          "vinom_snapshots_new");
        }

        /// <summary>A snap message (as Client.TryPoll gave it; its numbers
        /// relative to the snap of its snapshot's baseline, kept here for each
        /// snap applied): Status.Ok and the tick when its snapshot was applied
        /// (State: the state it stands for); Stale, UnknownBaseline,
        /// ChecksumMismatch or BadField when it was dropped (counted); inputAck
        /// the snap's ik whatever its fate once its tick was read (-1: none).</summary>
        public Status Receive(byte[] snap, out ulong tick, out long inputAck)
        {
            return Receive(snap, snap.Length, out tick, out inputAck);
        }

        /// <summary>The same for the first `length` bytes of `snap` (a buffer
        /// Client.Poll filled): no allocation.</summary>
        public Status Receive(byte[] snap, int length, out ulong tick, out long inputAck)
        {
            if (length < 0 || length > snap.Length) throw new ArgumentOutOfRangeException("length");
            int status = Native.vinom_snapshots_receive(handle, snap, (UIntPtr)length,
                                                        out tick, out inputAck);
            if (status == (int)Status.InvalidArgument || status == (int)Status.NoMemory)
                Library.Check(status, "vinom_snapshots_receive");
            return (Status)status;
        }

        /// <summary>The view rebuilt for `tick` as JSON, or null if not held.</summary>
        public string View(ulong tick)
        {
            int length;
            int status = Library.Filled(ref text, (byte[] output, out UIntPtr n) =>
                Native.vinom_snapshots_view(handle, tick, output, (UIntPtr)output.Length, out n), out length);
            if (status == (int)Status.Unexpected) return null;
            Library.Check(status, "vinom_snapshots_view");
            return Encoding.UTF8.GetString(text, 0, length);
        }

        /// <summary>The view rebuilt for `tick` as JSON (UTF-8) into `buffer`
        /// without allocating: its length, 0 if not held, or minus the size
        /// needed when `buffer` is too small.</summary>
        public int View(ulong tick, byte[] buffer)
        {
            UIntPtr n;
            int status = Native.vinom_snapshots_view(handle, tick, buffer, (UIntPtr)buffer.Length, out n);
            if (status == (int)Status.Unexpected) return 0;
            if (status == (int)Status.BufferTooSmall) return -(int)n.ToUInt64();
            Library.Check(status, "vinom_snapshots_view");
            return (int)n.ToUInt64();
        }

        /// <summary>The state the snap applied for `tick` stands for, as JSON
        /// ({"t": "state", "v", "p": "playing", "r" in s, "k", "ts", "s", "i"}),
        /// or null if not held.</summary>
        public string State(ulong tick)
        {
            int length;
            int status = Library.Filled(ref text, (byte[] output, out UIntPtr n) =>
                Native.vinom_snapshots_state(handle, tick, output, (UIntPtr)output.Length, out n), out length);
            if (status == (int)Status.Unexpected) return null;
            Library.Check(status, "vinom_snapshots_state");
            return Encoding.UTF8.GetString(text, 0, length);
        }

        /// <summary>The newest tick applied (what an input acknowledges), -1 before any.</summary>
        public long Newest { get { return Native.vinom_snapshots_newest(handle); } }

        /// <summary>The welcome's "vs" as JSON, the game's view schema, before any
        /// snapshot: schema snapshots, which the host sends such a game's every
        /// session, are read. False for a declaration it cannot read: nothing
        /// changes.</summary>
        public bool ReadSchema(string declarationJson)
        {
            byte[] declaration = Encoding.UTF8.GetBytes(declarationJson);
            int status = Native.vinom_snapshots_schema(handle, declaration, (UIntPtr)declaration.Length);
            if (status == (int)Status.BadJson || status == (int)Status.BadField) return false;
            Library.Check(status, "vinom_snapshots_schema");
            return true;
        }

        /// <summary>False: since game protocol 4 the inputs ask for nothing (kept
        /// for the ABI).</summary>
        public bool Asking { get { return Native.vinom_snapshots_asking(handle) != 0; } }

        internal SnapshotsHandle Handle { get { return handle; } }

        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>A real-time player's inputs (docs/protocol.md 14, "Inputs"):
    /// stamped for the first tick the host runs after they arrive, and repeated
    /// until a snap's ik acknowledges them.</summary>
    public sealed class Inputs : IDisposable
    {
        private readonly InputsHandle handle;
        private byte[] message = new byte[Client.MaxMessage];

        public Inputs(double tickRate)
        {
            Library.Check(Native.vinom_inputs_new(tickRate, out handle), "vinom_inputs_new");
        }

        /// <summary>A snapshot applied at `now` (its tick; null: none) and a snap's ik.</summary>
        public void Observe(ulong? tick, long inputAck, double now)
        {
            Native.vinom_inputs_observe(handle, tick ?? ulong.MaxValue, inputAck, now);
        }

        /// <summary>Queues one input (the JSON map the game takes); its tick.</summary>
        public ulong Add(string json, double now, double rtt)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(json);
            ulong tick;
            Library.Check(Native.vinom_inputs_add(handle, bytes, (UIntPtr)bytes.Length, now, rtt, out tick),
                          "vinom_inputs_add");
            return tick;
        }

        /// <summary>The input message (msgpack, for Client.SendUnreliable), with
        /// `ack` the newest snapshot applied (Snapshots.Newest).</summary>
        public byte[] Message(long ack)
        {
            UIntPtr length;
            Library.Check(Native.vinom_inputs_message(handle, ack, message, (UIntPtr)message.Length, out length),
                          "vinom_inputs_message");
            var result = new byte[(int)length.ToUInt64()];
            Buffer.BlockCopy(message, 0, result, 0, result.Length);
            return result;
        }

        /// <summary>The same acknowledging the newest snapshot `snapshots` applied.</summary>
        public byte[] Message(Snapshots snapshots)
        {
            UIntPtr length;
            Library.Check(Native.vinom_inputs_message_for(handle, snapshots.Handle, message,
                                                          (UIntPtr)message.Length, out length),
                          "vinom_inputs_message_for");
            var result = new byte[(int)length.ToUInt64()];
            Buffer.BlockCopy(message, 0, result, 0, result.Length);
            return result;
        }

        public int Pending { get { return (int)Native.vinom_inputs_pending(handle).ToUInt64(); } }
        public ulong Overflowed { get { return Native.vinom_inputs_overflowed(handle); } }

        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>The server's clock estimated from the snapshots' ticks (the
    /// fastest trip of the last 2 s; one that must come down slews, never steps
    /// back): what to render the others at.</summary>
    public sealed class ServerClock : IDisposable
    {
        private readonly ClockHandle handle;

        public ServerClock(double tickRate)
        {
            Library.Check(Native.vinom_clock_new(tickRate, out handle), "vinom_clock_new");
        }

        /// <summary>A snapshot of `tick` (built at `serverMs` of the room's time,
        /// a state's ts; null: none) arrived at `now`.</summary>
        public void Observe(ulong tick, double? serverMs, double now)
        {
            Native.vinom_clock_observe(handle, tick, serverMs ?? double.NaN, now);
        }

        /// <summary>The server's tick at `now`, fractional, over a round trip of
        /// `rtt` s; null before any snapshot.</summary>
        public double? Tick(double now, double rtt)
        {
            double tick;
            return Native.vinom_clock_tick(handle, now, rtt, out tick) == (int)Status.Ok
                ? tick : (double?)null;
        }

        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>The views to draw between snapshots: each pushed at the server
    /// time it was built, rendered at the clock's time less a delay (two
    /// snapshot intervals), the fields named moved between the two views around
    /// it, list items matched by a key, the shorter way round on a wrapping
    /// world; past the newest view extrapolated for one interval, then held.</summary>
    public sealed class SnapshotBuffer : IDisposable
    {
        private readonly BufferHandle handle;
        private byte[] text = new byte[4096];

        /// <param name="interpolationJson">{"fields": [path...], "keys": {path:
        /// key}, "wrap": {path: period}} (null: nothing moves); delay and
        /// maxExtrapolation in s (null: the defaults).</param>
        public SnapshotBuffer(double snapshotRate, string interpolationJson,
                              double? delay = null, double? maxExtrapolation = null)
        {
            byte[] rules = interpolationJson == null ? null : Encoding.UTF8.GetBytes(interpolationJson);
            Library.Check(Native.vinom_buffer_new(snapshotRate, rules,
                                                  (UIntPtr)(rules == null ? 0 : rules.Length),
                                                  delay ?? double.NaN, maxExtrapolation ?? double.NaN,
                                                  out handle),
                          "vinom_buffer_new");
        }

        /// <summary>A view (JSON) the server built at `serverTime` s.</summary>
        public void Push(double serverTime, string viewJson)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(viewJson);
            Library.Check(Native.vinom_buffer_push(handle, serverTime, bytes, (UIntPtr)bytes.Length),
                          "vinom_buffer_push");
        }

        /// <summary>The view to draw now (JSON; "null" before any), `serverNow`
        /// the clock's time in s.</summary>
        public string Render(double serverNow)
        {
            int length;
            Library.Check(Library.Filled(ref text, (byte[] output, out UIntPtr n) =>
                Native.vinom_buffer_render(handle, serverNow, output, (UIntPtr)output.Length, out n),
                out length), "vinom_buffer_render");
            return Encoding.UTF8.GetString(text, 0, length);
        }

        /// <summary>Renders past the newest view (extrapolated), beyond the
        /// bound (held) and before the oldest (early).</summary>
        public void Counts(out ulong extrapolated, out ulong held, out ulong early)
        {
            Native.vinom_buffer_counts(handle, out extrapolated, out held, out early);
        }

        public void Dispose() { handle.Dispose(); }
    }

    /// <summary>Messages between msgpack bytes and JSON text, by the library.</summary>
    public static class Messages
    {
        public static string ToJson(byte[] msgpack)
        {
            if (msgpack == null) return null;
            var text = new byte[4 * msgpack.Length + 64];
            int length;
            Library.Check(Library.Filled(ref text, (byte[] output, out UIntPtr n) =>
                Native.vinom_message_to_json(msgpack, (UIntPtr)msgpack.Length, output,
                                             (UIntPtr)output.Length, out n), out length), "not a message");
            return Encoding.UTF8.GetString(text, 0, length);
        }

        public static byte[] FromJson(string json)
        {
            byte[] text = Encoding.UTF8.GetBytes(json);
            var packed = new byte[text.Length + 64];
            int length;
            Library.Check(Library.Filled(ref packed, (byte[] output, out UIntPtr n) =>
                Native.vinom_message_from_json(text, (UIntPtr)text.Length, output,
                                               (UIntPtr)output.Length, out n), out length),
                          "not a message's JSON");
            var result = new byte[length];
            Buffer.BlockCopy(packed, 0, result, 0, length);
            return result;
        }
    }

    /// <summary>A small JSON reader for messages: objects become
    /// Dictionary&lt;string, object&gt;, arrays List&lt;object&gt;, numbers long
    /// or double, and strings, booleans and null themselves.</summary>
    public static class Json
    {
        public static object Parse(string text)
        {
            int at = 0;
            object value = Value(text, ref at);
            Space(text, ref at);
            if (at != text.Length) throw new FormatException("bytes after the JSON value at " + at);
            return value;
        }

        /// <summary>A value Parse gives back as JSON text (a map's keys in its order).</summary>
        public static string Write(object value)
        {
            var b = new StringBuilder();
            Write(value, b);
            return b.ToString();
        }

        private static void Write(object value, StringBuilder b)
        {
            if (value == null) { b.Append("null"); return; }
            if (value is bool) { b.Append((bool)value ? "true" : "false"); return; }
            if (value is long) { b.Append(((long)value).ToString(CultureInfo.InvariantCulture)); return; }
            if (value is double) { b.Append(((double)value).ToString("R", CultureInfo.InvariantCulture)); return; }
            var text = value as string;
            if (text != null)
            {
                b.Append('"');
                foreach (char c in text)
                {
                    if (c == '"' || c == '\\') b.Append('\\').Append(c);
                    else if (c < ' ') b.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else b.Append(c);
                }
                b.Append('"');
                return;
            }
            var map = value as Dictionary<string, object>;
            if (map != null)
            {
                b.Append('{');
                bool first = true;
                foreach (var item in map)
                {
                    if (!first) b.Append(',');
                    first = false;
                    Write(item.Key, b);
                    b.Append(':');
                    Write(item.Value, b);
                }
                b.Append('}');
                return;
            }
            var list = value as List<object>;
            if (list == null) throw new ArgumentException("not a value Json.Parse gives");
            b.Append('[');
            for (int i = 0; i < list.Count; ++i)
            {
                if (i > 0) b.Append(',');
                Write(list[i], b);
            }
            b.Append(']');
        }

        private static void Space(string s, ref int at)
        {
            while (at < s.Length && (s[at] == ' ' || s[at] == '\t' || s[at] == '\n' || s[at] == '\r')) ++at;
        }

        private static object Value(string s, ref int at)
        {
            Space(s, ref at);
            if (at >= s.Length) throw new FormatException("truncated JSON");
            char c = s[at];
            if (c == '{')
            {
                var map = new Dictionary<string, object>();
                ++at;
                Space(s, ref at);
                if (at < s.Length && s[at] == '}') { ++at; return map; }
                while (true)
                {
                    Space(s, ref at);
                    string key = String(s, ref at);
                    Space(s, ref at);
                    Expect(s, ref at, ':');
                    map[key] = Value(s, ref at);
                    Space(s, ref at);
                    if (at < s.Length && s[at] == ',') { ++at; continue; }
                    Expect(s, ref at, '}');
                    return map;
                }
            }
            if (c == '[')
            {
                var list = new List<object>();
                ++at;
                Space(s, ref at);
                if (at < s.Length && s[at] == ']') { ++at; return list; }
                while (true)
                {
                    list.Add(Value(s, ref at));
                    Space(s, ref at);
                    if (at < s.Length && s[at] == ',') { ++at; continue; }
                    Expect(s, ref at, ']');
                    return list;
                }
            }
            if (c == '"') return String(s, ref at);
            if (Word(s, ref at, "true")) return true;
            if (Word(s, ref at, "false")) return false;
            if (Word(s, ref at, "null")) return null;
            int start = at;
            while (at < s.Length && "+-0123456789.eE".IndexOf(s[at]) >= 0) ++at;
            string number = s.Substring(start, at - start);
            long whole;
            if (long.TryParse(number, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out whole))
                return whole;
            double real;
            if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out real))
                return real;
            throw new FormatException("not JSON at " + start);
        }

        private static bool Word(string s, ref int at, string word)
        {
            if (string.CompareOrdinal(s, at, word, 0, word.Length) != 0) return false;
            at += word.Length;
            return true;
        }

        private static void Expect(string s, ref int at, char c)
        {
            if (at >= s.Length || s[at] != c) throw new FormatException("expected '" + c + "' at " + at);
            ++at;
        }

        private static string String(string s, ref int at)
        {
            Expect(s, ref at, '"');
            var b = new StringBuilder();
            while (true)
            {
                if (at >= s.Length) throw new FormatException("truncated string");
                char c = s[at++];
                if (c == '"') return b.ToString();
                if (c != '\\') { b.Append(c); continue; }
                if (at >= s.Length) throw new FormatException("truncated string");
                char e = s[at++];
                switch (e)
                {
                    case 'b': b.Append('\b'); break;
                    case 'f': b.Append('\f'); break;
                    case 'n': b.Append('\n'); break;
                    case 'r': b.Append('\r'); break;
                    case 't': b.Append('\t'); break;
                    case 'u':
                        if (at + 4 > s.Length) throw new FormatException("truncated \\u escape");
                        b.Append((char)int.Parse(s.Substring(at, 4), NumberStyles.HexNumber,
                                                 CultureInfo.InvariantCulture));
                        at += 4;
                        break;
                    default: b.Append(e); break;
                }
            }
        }
    }

    internal sealed class TokenHandle : SafeHandle
    {
        public TokenHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.vinom_token_free(handle); return true; }
    }

    internal sealed class ClientHandle : SafeHandle
    {
        public ClientHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.vinom_client_free(handle); return true; }
    }

    internal sealed class SnapshotsHandle : SafeHandle
    {
        public SnapshotsHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.vinom_snapshots_free(handle); return true; }
    }

    internal sealed class InputsHandle : SafeHandle
    {
        public InputsHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.vinom_inputs_free(handle); return true; }
    }

    internal sealed class ClockHandle : SafeHandle
    {
        public ClockHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.vinom_clock_free(handle); return true; }
    }

    internal sealed class BufferHandle : SafeHandle
    {
        public BufferHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.vinom_buffer_free(handle); return true; }
    }

    internal sealed class LobbyHandle : SafeHandle
    {
        public LobbyHandle() : base(IntPtr.Zero, true) { }
        public override bool IsInvalid { get { return handle == IntPtr.Zero; } }
        protected override bool ReleaseHandle() { Native.vinom_lobby_free(handle); return true; }
    }

    // vinom.h, one to one. "vinom" resolves to libvinom.so (Linux; Unity:
    // Plugins/x86_64), vinom.dll or libvinom.dylib.
    internal static class Native
    {
#if UNITY_IOS && !UNITY_EDITOR
        private const string Lib = "__Internal";  // iOS links the library statically
#else
        private const string Lib = "vinom";
#endif

        [DllImport(Lib)] internal static extern uint vinom_abi_version();
        [DllImport(Lib)] internal static extern uint vinom_protocol_version();
        [DllImport(Lib)] internal static extern uint vinom_game_protocol();
        [DllImport(Lib)] internal static extern IntPtr vinom_version_string();
        [DllImport(Lib)] internal static extern IntPtr vinom_status_name(int status);

        [DllImport(Lib)] internal static extern int vinom_token_parse(byte[] json, UIntPtr len, out TokenHandle token);
        [DllImport(Lib)] internal static extern void vinom_token_free(IntPtr token);
        [DllImport(Lib)] internal static extern UIntPtr vinom_token_host_count(TokenHandle token);
        [DllImport(Lib)] internal static extern int vinom_token_host(TokenHandle token, UIntPtr index, out IntPtr host, out ushort port);
        [DllImport(Lib)] internal static extern uint vinom_token_timeout_ms(TokenHandle token);

        [DllImport(Lib)] internal static extern int vinom_client_new(TokenHandle token, ulong firstSequence, double now, double attemptTimeout, out ClientHandle client);
        [DllImport(Lib)] internal static extern void vinom_client_free(IntPtr client);
        [DllImport(Lib)] internal static extern int vinom_client_state(ClientHandle client);
        [DllImport(Lib)] internal static extern int vinom_client_receive(ClientHandle client, byte[] datagram, UIntPtr len, double now);
        [DllImport(Lib)] internal static extern int vinom_client_update(ClientHandle client, double now);
        [DllImport(Lib)] internal static extern int vinom_client_datagram(ClientHandle client, byte[] output, UIntPtr cap, out UIntPtr len);
        [DllImport(Lib)] internal static extern int vinom_client_poll(ClientHandle client, out int kind, out int channel, byte[] output, UIntPtr cap, out UIntPtr len);
        [DllImport(Lib)] internal static extern int vinom_client_send(ClientHandle client, byte[] message, UIntPtr len);
        [DllImport(Lib)] internal static extern int vinom_client_close(ClientHandle client);
        [DllImport(Lib)] internal static extern UIntPtr vinom_client_pending(ClientHandle client);
        [DllImport(Lib)] internal static extern ulong vinom_client_session_id(ClientHandle client);
        [DllImport(Lib)] internal static extern double vinom_client_server_time(ClientHandle client);
        [DllImport(Lib)] internal static extern IntPtr vinom_client_failure(ClientHandle client);
        [DllImport(Lib)] internal static extern IntPtr vinom_client_ended(ClientHandle client);
        [DllImport(Lib)] internal static extern int vinom_client_host_closed(ClientHandle client);

        [DllImport(Lib)] internal static extern int vinom_client_send_unreliable(ClientHandle client, byte[] message, UIntPtr len);

        [DllImport(Lib)] internal static extern int vinom_snapshots_new(byte[] rules, UIntPtr len, out SnapshotsHandle snapshots);
        [DllImport(Lib)] internal static extern void vinom_snapshots_free(IntPtr snapshots);
        [DllImport(Lib)] internal static extern int vinom_snapshots_receive(SnapshotsHandle snapshots, byte[] snap, UIntPtr len, out ulong tick, out long inputAck);
        [DllImport(Lib)] internal static extern int vinom_snapshots_view(SnapshotsHandle snapshots, ulong tick, byte[] output, UIntPtr cap, out UIntPtr len);
        [DllImport(Lib)] internal static extern int vinom_snapshots_state(SnapshotsHandle snapshots, ulong tick, byte[] output, UIntPtr cap, out UIntPtr len);
        [DllImport(Lib)] internal static extern long vinom_snapshots_newest(SnapshotsHandle snapshots);
        [DllImport(Lib)] internal static extern int vinom_snapshots_schema(SnapshotsHandle snapshots, byte[] declaration, UIntPtr len);
        [DllImport(Lib)] internal static extern int vinom_snapshots_asking(SnapshotsHandle snapshots);
        [DllImport(Lib)] internal static extern int vinom_inputs_new(double tickRate, out InputsHandle inputs);
        [DllImport(Lib)] internal static extern void vinom_inputs_free(IntPtr inputs);
        [DllImport(Lib)] internal static extern void vinom_inputs_observe(InputsHandle inputs, ulong tick, long inputAck, double now);
        [DllImport(Lib)] internal static extern int vinom_inputs_add(InputsHandle inputs, byte[] json, UIntPtr len, double now, double rtt, out ulong tick);
        [DllImport(Lib)] internal static extern int vinom_inputs_message(InputsHandle inputs, long ack, byte[] output, UIntPtr cap, out UIntPtr len);
        [DllImport(Lib)] internal static extern int vinom_inputs_message_for(InputsHandle inputs, SnapshotsHandle snapshots, byte[] output, UIntPtr cap, out UIntPtr len);
        [DllImport(Lib)] internal static extern UIntPtr vinom_inputs_pending(InputsHandle inputs);
        [DllImport(Lib)] internal static extern ulong vinom_inputs_overflowed(InputsHandle inputs);

        [DllImport(Lib)] internal static extern int vinom_clock_new(double tickRate, out ClockHandle clock);
        [DllImport(Lib)] internal static extern void vinom_clock_free(IntPtr clock);
        [DllImport(Lib)] internal static extern void vinom_clock_observe(ClockHandle clock, ulong tick, double serverMs, double now);
        [DllImport(Lib)] internal static extern int vinom_clock_tick(ClockHandle clock, double now, double rtt, out double tick);
        [DllImport(Lib)] internal static extern int vinom_buffer_new(double snapshotRate, byte[] interpolation, UIntPtr len, double delay, double maxExtrapolation, out BufferHandle buffer);
        [DllImport(Lib)] internal static extern void vinom_buffer_free(IntPtr buffer);
        [DllImport(Lib)] internal static extern int vinom_buffer_push(BufferHandle buffer, double serverTime, byte[] view, UIntPtr len);
        [DllImport(Lib)] internal static extern int vinom_buffer_render(BufferHandle buffer, double serverNow, byte[] output, UIntPtr cap, out UIntPtr len);
        [DllImport(Lib)] internal static extern void vinom_buffer_counts(BufferHandle buffer, out ulong extrapolated, out ulong held, out ulong early);

        [DllImport(Lib)] internal static extern int vinom_lobby_new(byte[] host, ushort port, byte[] trust, byte[] serverName, double now, double timeout, out LobbyHandle lobby);
        [DllImport(Lib)] internal static extern void vinom_lobby_free(IntPtr lobby);
        [DllImport(Lib)] internal static extern int vinom_lobby_state(LobbyHandle lobby);
        [DllImport(Lib)] internal static extern int vinom_lobby_update(LobbyHandle lobby, double now);
        [DllImport(Lib)] internal static extern int vinom_lobby_poll(LobbyHandle lobby, out int kind, out long id, byte[] output, UIntPtr cap, out UIntPtr len);
        [DllImport(Lib)] internal static extern int vinom_lobby_hello(LobbyHandle lobby, byte[] name, byte[] auth, out long id);
        [DllImport(Lib)] internal static extern int vinom_lobby_queue(LobbyHandle lobby, byte[] game, byte[] queue, out long id);
        [DllImport(Lib)] internal static extern int vinom_lobby_cancel(LobbyHandle lobby, out long id);
        [DllImport(Lib)] internal static extern int vinom_lobby_create_room(LobbyHandle lobby, byte[] game, int isPrivate, out long id);
        [DllImport(Lib)] internal static extern int vinom_lobby_join_room(LobbyHandle lobby, byte[] code, out long id);
        [DllImport(Lib)] internal static extern int vinom_lobby_add_bot(LobbyHandle lobby, out long id);
        [DllImport(Lib)] internal static extern int vinom_lobby_reconnect(LobbyHandle lobby, byte[] playerId, byte[] secret, byte[] auth, out long id);
        [DllImport(Lib)] internal static extern int vinom_lobby_close(LobbyHandle lobby);
        [DllImport(Lib)] internal static extern IntPtr vinom_lobby_player_id(LobbyHandle lobby);
        [DllImport(Lib)] internal static extern IntPtr vinom_lobby_secret(LobbyHandle lobby);
        [DllImport(Lib)] internal static extern IntPtr vinom_lobby_token(LobbyHandle lobby);
        [DllImport(Lib)] internal static extern IntPtr vinom_lobby_error_code(LobbyHandle lobby);
        [DllImport(Lib)] internal static extern IntPtr vinom_lobby_failure(LobbyHandle lobby);
        [DllImport(Lib)] internal static extern int vinom_lobby_set_idle_timeout(LobbyHandle lobby, double seconds);
        [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
        internal delegate void LogFn(IntPtr userData, int level, IntPtr line);
        [DllImport(Lib)] internal static extern void vinom_set_log(LogFn callback, IntPtr userData, int level);

        [DllImport(Lib)] internal static extern int vinom_message_to_json(byte[] message, UIntPtr len, byte[] output, UIntPtr cap, out UIntPtr outLen);
        [DllImport(Lib)] internal static extern int vinom_message_from_json(byte[] json, UIntPtr len, byte[] output, UIntPtr cap, out UIntPtr outLen);
    }
}

#if !UNITY_5_3_OR_NEWER
namespace AOT
{
    /// <summary>Unity's attribute for IL2CPP (a static method the native side
    /// calls back), declared here where Unity's is absent.</summary>
    [AttributeUsage(AttributeTargets.Method)]
    internal sealed class MonoPInvokeCallbackAttribute : Attribute
    {
        public MonoPInvokeCallbackAttribute(Type type) { }
    }
}
#endif
