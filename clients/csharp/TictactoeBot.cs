// TictactoeBot.cs: a C# bot that plays its seat of tictactoe on a real game
// host through the binding (Vinom.cs) and libvinom.so, in a game's shape: one
// thread, a non-blocking UDP socket, a frame every 10 ms that feeds the client
// what arrived, updates it, sends what it returns and reads its events.
//
//   mono TictactoeBot.exe TOKEN_FILE HOST PORT [--seconds S] [--attempt-timeout S]
//   mono TictactoeBot.exe --lobby HOST PORT [--trust CERT] [--name N] [--seconds S] ...
//
// TOKEN_FILE holds the "token" object of the lobby's match_found; HOST PORT is
// the game host's UDP address (the token's hosts[0]). With --lobby the bot
// gets its seat itself, through the binding's Lobby (TLS verified against
// CERT, a PEM file; without it the system's CAs): it says hello as N
// ("Native"), makes a room of tictactoe, adds the game's bot and plays the
// seat of the room's match_found on the token's first host, printing
// "lobby_welcome", "room" (the frame) and "match_found" lines first. A lobby
// that cannot be reached or verified prints "vinom_csharp_bot: lobby failed:
// ..." on stderr, an error frame "vinom_csharp_bot: lobby error: CODE: ...",
// and exits 1. It plays the first
// empty cell on its turn and declines the rematch, and prints one JSON line
// per event on stdout, as vinom_udp_probe does: "welcome", each room
// "message" (channel and value), each action "sent", and "disconnected" when
// it closes the session (once the match has finished and its actions are
// acked, or after S seconds, 60 by default). A refused or unanswered session
// prints "vinom_csharp_bot: session failed: REASON: ..." on stderr and exits
// 1; a bad command line or token exits 2.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Net;
using System.Net.Sockets;
using System.Threading;
using Vinom;

public static class TictactoeBot
{
    private static int Usage(string why)
    {
        Console.Error.WriteLine("vinom_csharp_bot: " + why);
        Console.Error.WriteLine("usage: TictactoeBot.exe TOKEN_FILE HOST PORT [--seconds S] [--attempt-timeout S]");
        Console.Error.WriteLine("       TictactoeBot.exe --lobby HOST PORT [--trust CERT] [--name N] [--seconds S] [--attempt-timeout S]");
        return 2;
    }

    private static int LobbyFailed(string why)
    {
        Console.WriteLine("{\"event\": \"failed\", \"reason\": \"lobby\"}");
        Console.Error.WriteLine("vinom_csharp_bot: lobby failed: " + why);
        return 1;
    }

    // The seat's connect token from the lobby: hello, a room of tictactoe with the game's
    // bot, and the room's match_found (0), or the exit code of a failure.
    private static int FromLobby(string host, int port, string trust, string name, out string token)
    {
        token = null;
        using (var lobby = new Lobby(host, port, trust, null, Now()))
        {
            lobby.Hello(name);
            long roomRequest = -1;
            bool botAsked = false;
            double deadline = Now() + 60;
            while (Now() < deadline)
            {
                lobby.Update(Now());
                LobbyEvent e;
                while (lobby.TryPoll(out e))
                {
                    switch (e.Kind)
                    {
                        case LobbyEventKind.Failed:
                            return LobbyFailed(lobby.Failure);
                        case LobbyEventKind.Closed:
                            return LobbyFailed("the lobby closed the connection before match_found");
                        case LobbyEventKind.Error:
                            Console.WriteLine("{\"event\": \"failed\", \"reason\": \"lobby\", \"code\": \"" +
                                              lobby.ErrorCode + "\"}");
                            Console.Error.WriteLine("vinom_csharp_bot: lobby error: " + lobby.ErrorCode + ": " + e.Json);
                            return 1;
                        case LobbyEventKind.Welcome:
                            Console.WriteLine("{\"event\": \"lobby_welcome\", \"player_id\": \"" + lobby.PlayerId + "\"}");
                            roomRequest = lobby.CreateRoom("tictactoe");
                            break;
                        case LobbyEventKind.Room:
                            Console.WriteLine("{\"event\": \"room\", \"frame\": " + e.Json + "}");
                            if (!botAsked && e.Id == roomRequest)
                            {
                                botAsked = true;
                                lobby.AddBot();
                            }
                            break;
                        case LobbyEventKind.MatchFound:
                            Console.WriteLine("{\"event\": \"match_found\"}");
                            token = lobby.Token;
                            lobby.Close();
                            return 0;
                    }
                }
                Thread.Sleep(10);
            }
            return LobbyFailed("no match_found within 60 s");
        }
    }

    private static int Fail(string reason, string detail)
    {
        Console.WriteLine("{\"event\": \"failed\", \"reason\": \"" + reason + "\"}");
        Console.Error.WriteLine("vinom_csharp_bot: session failed: " + reason + ": " + detail);
        return 1;
    }

    private static double Now()
    {
        return (double)Stopwatch.GetTimestamp() / Stopwatch.Frequency;
    }

    // The action for a state's view, as JSON, or null.
    private static string Move(Dictionary<string, object> view, string me)
    {
        object flag;
        if (view.TryGetValue("finished", out flag) && true.Equals(flag)) return null;
        if (view.TryGetValue("round_over", out flag) && true.Equals(flag))
        {
            foreach (object p in (List<object>)view["players"])
            {
                var player = p as Dictionary<string, object>;
                object rematch;
                if (player != null && me.Equals(player["id"]) &&
                    !(player.TryGetValue("rematch", out rematch) && true.Equals(rematch)))
                    return "{\"rematch\": false}";
            }
            return null;
        }
        object turn;
        if (!view.TryGetValue("turn", out turn) || !me.Equals(turn)) return null;
        var board = (List<object>)view["board"];
        for (int i = 0; i < board.Count; ++i)
            if ("".Equals(board[i])) return "{\"cell\": " + i + "}";
        return null;
    }

    public static int Main(string[] args)
    {
        bool fromLobby = args.Length > 0 && args[0] == "--lobby";
        if (args.Length < 3) return Usage(fromLobby ? "expected --lobby HOST PORT" : "expected TOKEN_FILE HOST PORT");
        double seconds = 60, attemptTimeout = 0;
        string trust = null, name = "Native";
        for (int i = 3; i < args.Length; ++i)
        {
            double v;
            if (fromLobby && (args[i] == "--trust" || args[i] == "--name") && i + 1 < args.Length)
            {
                if (args[i] == "--trust") trust = args[i + 1]; else name = args[i + 1];
                ++i;
            }
            else if ((args[i] == "--seconds" || args[i] == "--attempt-timeout") && i + 1 < args.Length &&
                double.TryParse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out v) && v > 0)
            {
                if (args[i] == "--seconds") seconds = v; else attemptTimeout = v;
                ++i;
            }
            else
            {
                return Usage("unknown option or bad value: " + args[i]);
            }
        }
        int port;
        if (!int.TryParse(args[2], out port) || port < 1 || port > 65535) return Usage("bad port " + args[2]);

        string text, hostName;
        if (fromLobby)
        {
            try
            {
                int failed = FromLobby(args[1], port, trust, name, out text);
                if (failed != 0) return failed;
                using (var seat = ConnectToken.Parse(text))
                {
                    Host first = seat.Hosts[0];
                    hostName = first.Address;
                    port = first.Port;
                }
            }
            catch (DllNotFoundException e) { return Usage("cannot load libvinom: " + e.Message); }
            catch (InvalidOperationException e) { return Usage(e.Message); }  // another ABI
        }
        else
        {
            hostName = args[1];
            try { text = File.ReadAllText(args[0]); }
            catch (Exception e) { return Usage("cannot read " + args[0] + ": " + e.Message); }
        }
        ConnectToken token;
        string me;
        try
        {
            token = ConnectToken.Parse(text);
            me = (string)((Dictionary<string, object>)Json.Parse(text))["player_id"];
        }
        catch (VinomException e) { return Usage(e.Message); }  // "not a connect token: bad_json"
        catch (DllNotFoundException e) { return Usage("cannot load libvinom: " + e.Message); }
        catch (InvalidOperationException e) { return Usage(e.Message); }  // another ABI
        catch (Exception e) { return Usage("not a connect token: " + e.Message); }
        if (attemptTimeout <= 0) attemptTimeout = Math.Max(token.TimeoutMs / 1000.0 + 1.0, 5.0);
        string where = hostName + ":" + port.ToString(CultureInfo.InvariantCulture);

        IPAddress address;
        if (!IPAddress.TryParse(hostName, out address)) address = Dns.GetHostAddresses(hostName)[0];
        using (token)
        using (var socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp))
        using (var client = new Client(token, Now(), attemptTimeout))
        {
            // Connected: the kernel drops datagrams from any other source.
            socket.Connect(new IPEndPoint(address, port));
            socket.Blocking = false;
            Console.WriteLine("{\"event\": \"started\", \"library\": \"" + Library.Version + "\"}");

            var buffer = new byte[2048];
            bool welcomed = false, finalSeen = false;
            double connectedAt = 0;
            long actedVersion = -1;
            while (true)
            {
                double now = Now();
                if (client.State == SessionState.Connected && client.Pending == 0 &&
                    (finalSeen || now - connectedAt >= seconds))
                {
                    client.Close();
                    byte[] bye;
                    while (client.TryTakeDatagram(out bye)) Send(socket, bye);
                    Console.WriteLine("{\"event\": \"disconnected\", \"reason\": \"closed\"}");
                    return 0;
                }

                socket.Poll(10000, SelectMode.SelectRead);
                while (socket.Available > 0)
                {
                    int n;
                    try { n = socket.Receive(buffer); }
                    catch (SocketException) { break; }  // an ICMP error: the timers decide
                    client.Receive(buffer, n, Now());  // a bad datagram is dropped
                }
                client.Update(Now());
                byte[] outgoing;
                while (client.TryTakeDatagram(out outgoing)) Send(socket, outgoing);

                ClientEvent e;
                while (client.TryPoll(out e))
                {
                    switch (e.Kind)
                    {
                        case EventKind.Failed:
                            if (e.Reason == "denied")
                                return Fail("denied", where + " refused the seat (the token is spent)");
                            if (welcomed)
                                return Fail("timeout", "no packet from " + where + " for the session timeout");
                            return Fail("timeout", "no welcome from " + where + " within " +
                                        attemptTimeout.ToString(CultureInfo.InvariantCulture) +
                                        " s (the host refused or did not answer the token)");
                        case EventKind.Welcome:
                            welcomed = true;
                            connectedAt = Now();
                            Console.WriteLine("{\"event\": \"welcome\", \"session_id\": " + client.SessionId +
                                              ", \"server_time\": " +
                                              client.ServerTime.ToString("R", CultureInfo.InvariantCulture) + "}");
                            break;
                        case EventKind.Disconnected:
                            Console.WriteLine("{\"event\": \"disconnected\", \"reason\": \"disconnect\"}");
                            if (finalSeen) return 0;
                            Console.Error.WriteLine("vinom_csharp_bot: session failed: disconnect: " + where +
                                                    " closed the session");
                            return 1;
                        case EventKind.Message:
                            string json = e.Json;
                            Console.WriteLine("{\"event\": \"message\", \"channel\": " + e.Channel +
                                              ", \"message\": " + json + "}");
                            var message = Json.Parse(json) as Dictionary<string, object>;
                            object t;
                            if (message == null || !message.TryGetValue("t", out t)) break;
                            if ("phase".Equals(t))
                            {
                                object p = message["p"];
                                finalSeen = finalSeen || "finished".Equals(p) || "aborted".Equals(p);
                            }
                            object v, s;
                            if ("state".Equals(t) && message.TryGetValue("v", out v) &&
                                message.TryGetValue("s", out s) && Convert.ToInt64(v) > actedVersion)
                            {
                                actedVersion = Convert.ToInt64(v);
                                var view = s as Dictionary<string, object>;
                                string move = view == null ? null : Move(view, me);
                                if (move != null)
                                {
                                    string action = "{\"t\": \"action\", \"a\": " + move + "}";
                                    client.SendJson(action);
                                    Console.WriteLine("{\"event\": \"sent\", \"message\": " + action + "}");
                                }
                            }
                            break;
                    }
                }
            }
        }
    }

    private static void Send(Socket socket, byte[] datagram)
    {
        // A full socket buffer or an ICMP error loses the datagram, as the network may.
        try { socket.Send(datagram); }
        catch (SocketException) { }
    }
}
