// ArenaBot.cs: a C# player of a real-time game (the arena of
// benchmarks/arena.py) through the binding (Vinom.cs) and libvinom.so, in a
// game's shape: one thread, a non-blocking UDP socket, a frame every 5 ms. Each
// snap goes through the binding's Snapshots (delta decoding, the checksum when
// the host sends it; with the welcome's view schema `vs`, schema snapshots,
// which the host sends from the first snap; each snap's numbers resolved
// against those of its baseline's snap);
// once a tick of the game it gives an input
// (`{"move": [vx, vy], "n": k}`, k counting them), stamped and repeated by the
// binding's Inputs until a snap acknowledges it, on the unreliable channel.
// Each frame it draws the others as a game would: the binding's ServerClock
// and SnapshotBuffer render the view between the last two snapshots.
//
//   mono ArenaBot.exe TOKEN_FILE HOST PORT [--seconds S] [--loss P] [--seed N]
//
// TOKEN_FILE holds the "token" object of the lobby's match_found; HOST PORT is
// the game host's UDP address. --loss drops that share of the datagrams each
// way (seeded by --seed), as a lossy network would. After S seconds (6 by
// default) of play it closes the session and prints one JSON line, "arena":
// inputs given, those still unacknowledged, snapshots applied (`schema` of
// them schema snapshots) and dropped by status, datagrams dropped each way,
// frames drawn and the buffer's counts
// (extrapolated, held, early), and the players of the last frame drawn. A session that fails prints
// "vinom_csharp_arena: session failed: REASON" on stderr and exits 1; a bad
// command line or token exits 2.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Sockets;
using Vinom;

public static class ArenaBot
{
    // The "drawn" object of the report.
    private static string Drawn(SnapshotBuffer drawn, long frames, string lastFrame)
    {
        ulong extrapolated = 0, held = 0, early = 0;
        if (drawn != null) drawn.Counts(out extrapolated, out held, out early);
        var last = Json.Parse(lastFrame) as Dictionary<string, object>;
        object players = null;
        if (last != null) last.TryGetValue("players", out players);
        var seen = players as List<object>;
        return "{\"frames\": " + frames + ", \"extrapolated\": " + extrapolated +
               ", \"held\": " + held + ", \"early\": " + early +
               ", \"players\": " + (seen == null ? -1 : seen.Count) + "}";
    }

    private static int Usage(string why)
    {
        Console.Error.WriteLine("vinom_csharp_arena: " + why);
        Console.Error.WriteLine("usage: ArenaBot.exe TOKEN_FILE HOST PORT [--seconds S] [--loss P] [--seed N]");
        return 2;
    }

    // The first byte of a snap's snapshot (0x01: a schema snapshot, 0x94: 16.1's),
    // after the marker and its five LEB128 numbers; -1 for none.
    private static int SnapshotFormat(byte[] snap)
    {
        int at = 1;
        for (int n = 0; n < 5; ++n)
        {
            while (at < snap.Length && snap[at] >= 0x80) ++at;
            ++at;
        }
        return at < snap.Length ? snap[at] : -1;
    }

    private static double Now()
    {
        return (double)Stopwatch.GetTimestamp() / Stopwatch.Frequency;
    }

    public static int Main(string[] args)
    {
        if (args.Length < 3) return Usage("expected TOKEN_FILE HOST PORT");
        double seconds = 6, loss = 0;
        int seed = 1;
        for (int i = 3; i < args.Length; ++i)
        {
            double v;
            if (i + 1 < args.Length && (args[i] == "--seconds" || args[i] == "--loss" || args[i] == "--seed") &&
                double.TryParse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out v) && v >= 0)
            {
                if (args[i] == "--seconds") seconds = v;
                else if (args[i] == "--loss" && v < 1) loss = v;
                else if (args[i] == "--seed") seed = (int)v;
                else return Usage("--loss takes a share below 1");
                ++i;
            }
            else
            {
                return Usage("unknown option or bad value: " + args[i]);
            }
        }
        int port;
        if (!int.TryParse(args[2], out port) || port < 1 || port > 65535) return Usage("bad port " + args[2]);
        ConnectToken token;
        try { token = ConnectToken.Parse(File.ReadAllText(args[0])); }
        catch (Exception e) { return Usage("not a connect token: " + e.Message); }

        IPAddress address;
        if (!IPAddress.TryParse(args[1], out address)) address = Dns.GetHostAddresses(args[1])[0];
        var network = new Random(seed);       // the simulated network's losses
        var player = new Random(seed + 1000); // the player's velocities
        long droppedOut = 0, droppedIn = 0;
        var drops = new Dictionary<string, long> {
            { "unknown_baseline", 0 }, { "checksum_mismatch", 0 }, { "stale", 0 }, { "corrupt", 0 } };
        long applied = 0, given = 0, schema = 0;
        Snapshots snapshots = null;
        Inputs inputs = null;
        ServerClock clock = null;
        SnapshotBuffer drawn = null;
        long frames = 0;
        string lastFrame = "null";
        double tickRate = 0, nextInput = 0, connectedAt = 0;
        bool welcomed = false, hasSchema = false;

        using (token)
        using (var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp))
        using (var client = new Client(token, Now()))
        {
            socket.Connect(new IPEndPoint(address, port));
            socket.Blocking = false;
            var buffer = new byte[2048];
            while (true)
            {
                double now = Now();
                if (welcomed && client.State == SessionState.Connected && client.Pending == 0 &&
                    now - connectedAt >= seconds)
                {
                    client.Close();
                    byte[] bye;
                    while (client.TryTakeDatagram(out bye)) socket.Send(bye);
                    Console.WriteLine("{\"event\": \"arena\", \"inputs\": " + given +
                                      ", \"unacknowledged\": " + (inputs == null ? 0 : inputs.Pending) +
                                      ", \"overflowed\": " + (inputs == null ? 0 : inputs.Overflowed) +
                                      ", \"snapshots\": " + applied +
                                      ", \"schema\": " + schema +
                                      ", \"drops\": {\"corrupt\": " + drops["corrupt"] +
                                      ", \"unknown_baseline\": " + drops["unknown_baseline"] +
                                      ", \"checksum\": " + drops["checksum_mismatch"] +
                                      ", \"stale\": " + drops["stale"] + "}" +
                                      ", \"dropped_out\": " + droppedOut + ", \"dropped_in\": " + droppedIn +
                                      ", \"drawn\": " + Drawn(drawn, frames, lastFrame) + "}");
                    if (snapshots != null) snapshots.Dispose();
                    if (inputs != null) inputs.Dispose();
                    if (clock != null) clock.Dispose();
                    if (drawn != null) drawn.Dispose();
                    return 0;
                }
                // Once a tick of the game, from the first snapshot applied on.
                if (inputs != null && snapshots.Newest >= 0 && now >= nextInput)
                {
                    nextInput = Math.Max(nextInput + 1.0 / tickRate, now);
                    ++given;
                    string move = "{\"move\": [" +
                        (player.NextDouble() * 200 - 100).ToString("R", CultureInfo.InvariantCulture) + ", " +
                        (player.NextDouble() * 200 - 100).ToString("R", CultureInfo.InvariantCulture) +
                        "], \"n\": " + given + "}";
                    inputs.Add(move, now, 0.0);
                    client.SendUnreliable(inputs.Message(snapshots));
                }
                client.Update(now);
                byte[] outgoing;
                while (client.TryTakeDatagram(out outgoing))
                {
                    if (loss > 0 && network.NextDouble() < loss) { ++droppedOut; continue; }
                    try { socket.Send(outgoing); } catch (SocketException) { }
                }

                ClientEvent e;
                while (client.TryPoll(out e))
                {
                    if (e.Kind == EventKind.Failed)
                    {
                        Console.Error.WriteLine("vinom_csharp_arena: session failed: " + e.Reason);
                        return 1;
                    }
                    if (e.Kind == EventKind.Disconnected)
                    {
                        Console.Error.WriteLine("vinom_csharp_arena: session failed: disconnect");
                        return 1;
                    }
                    if (e.Kind == EventKind.Welcome)
                    {
                        welcomed = true;
                        connectedAt = Now();
                        continue;
                    }
                    if (e.Kind != EventKind.Message) continue;
                    byte first = e.Message.Length > 0 ? e.Message[0] : (byte)0;
                    if (first == 0xc1)
                    {
                        // A snap (docs/protocol.md 14), no msgpack.
                        if (snapshots == null) continue;
                        ulong tick;
                        long ack;
                        Status status = snapshots.Receive(e.Message, out tick, out ack);
                        if (status == Status.Ok) ++applied;
                        else if (status == Status.UnknownBaseline) ++drops["unknown_baseline"];
                        else if (status == Status.ChecksumMismatch) ++drops["checksum_mismatch"];
                        else if (status == Status.Stale) ++drops["stale"];
                        else ++drops["corrupt"];
                        // With a schema the host sends nothing but schema snapshots.
                        if (status == Status.Ok && hasSchema && SnapshotFormat(e.Message) == 0x01)
                            ++schema;
                        inputs.Observe(status == Status.Ok ? (ulong?)tick : null, ack, Now());
                        if (status == Status.Ok)
                        {
                            clock.Observe(tick, null, Now());
                            drawn.Push(tick / tickRate, snapshots.View(tick));
                        }
                        continue;
                    }
                    var message = Json.Parse(e.Json) as Dictionary<string, object>;
                    object t;
                    if (message != null && message.TryGetValue("t", out t) && "welcome".Equals(t))
                    {
                        object q, rate;
                        message.TryGetValue("q", out q);
                        snapshots = new Snapshots(q == null ? null : Json.Write(q));
                        // A view schema it cannot read: its schema snapshots are
                        // dropped, counted corrupt.
                        object vs;
                        hasSchema = message.TryGetValue("vs", out vs) && vs != null &&
                                    snapshots.ReadSchema(Json.Write(vs));
                        tickRate = message.TryGetValue("tick_rate", out rate) ? Convert.ToDouble(rate) : 20.0;
                        inputs = new Inputs(tickRate);
                        clock = new ServerClock(tickRate);
                        // A seen player is [index, x, y, vx, vy]: matched by index.
                        drawn = new SnapshotBuffer(tickRate,
                            "{\"fields\": [\"players.*.1\", \"players.*.2\"], \"keys\": {\"players\": \"0\"}}");
                    }
                }

                // The frame drawn: the others where the server was a delay ago.
                double? serverTick = clock == null ? null : clock.Tick(now, 0.0);
                if (serverTick.HasValue)
                {
                    lastFrame = drawn.Render(serverTick.Value / tickRate);
                    ++frames;
                }

                socket.Poll(5000, SelectMode.SelectRead);
                while (socket.Available > 0)
                {
                    int n;
                    try { n = socket.Receive(buffer); }
                    catch (SocketException) { break; }
                    if (loss > 0 && network.NextDouble() < loss) { ++droppedIn; continue; }
                    client.Receive(buffer, n, Now());
                }
            }
        }
    }
}
