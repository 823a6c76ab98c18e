// TictactoeBotBehaviour.cs: TictactoeBot.cs's frame loop as a Unity
// MonoBehaviour, the sample of the Unity package (docs/clients.md): add it to
// a GameObject, give it the token of a match_found (tokenJson, the lobby's
// "token" object as JSON) and the host's UDP address, and it plays the first
// empty cell on its turn and declines the rematch. Each Update() is one frame:
// the datagrams that arrived, the client's timers, what is due sent, the
// events read. The session's frame path allocates nothing (Client.ReceiveFrom,
// SendTo and Poll into the buffer kept here); a message is read as JSON, which
// allocates, as a turn-based game may. Compiled here against a stub of
// UnityEngine (tests/unity_stub/); Unity itself was not run.
using System.Collections.Generic;
using System.Net;
using System.Net.Sockets;
using UnityEngine;
using Vinom;

public class TictactoeBotBehaviour : MonoBehaviour
{
    public string tokenJson = "";
    public string host = "127.0.0.1";
    public int port = 0;
    /// <summary>"" while it plays, then "match_ended", "host_closed", "disconnected" or the failure.</summary>
    public string outcome = "";

    private readonly byte[] buffer = new byte[Client.MaxReliableMessage];
    private ConnectToken token;
    private Client client;
    private Socket socket;
    private string me;
    private long actedVersion = -1;

    private static double Now()
    {
        return (double)System.Diagnostics.Stopwatch.GetTimestamp() / System.Diagnostics.Stopwatch.Frequency;
    }

    void Start()
    {
        token = ConnectToken.Parse(tokenJson);
        me = (string)((Dictionary<string, object>)Json.Parse(tokenJson))["player_id"];
        IPAddress address = IPAddress.Parse(host);
        socket = new Socket(address.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        socket.Connect(new IPEndPoint(address, port));  // the kernel drops other sources
        socket.Blocking = false;
        client = new Client(token, Now());
    }

    void Update()
    {
        if (client == null || outcome != "") return;
        double now = Now();
        client.ReceiveFrom(socket, now);
        client.Update(now);
        client.SendTo(socket);
        int channel, length;
        EventKind kind;
        while ((kind = client.Poll(buffer, out channel, out length)) != EventKind.None)
        {
            switch (kind)
            {
                case EventKind.Message:
                    Play(Messages.ToJson(Sub(length)));
                    break;
                case EventKind.Ended:
                    outcome = client.Ended;  // the match's end or the host's closed port: once
                    break;
                case EventKind.Disconnected:
                    outcome = "disconnected";
                    break;
                case EventKind.Failed:
                    outcome = client.Failure;
                    Debug.LogWarning("vinom: session failed: " + outcome);
                    break;
            }
        }
        client.SendTo(socket);  // the action just queued
    }

    void OnDestroy()
    {
        if (client != null)
        {
            client.Close();
            client.SendTo(socket);
            client.Dispose();
        }
        if (socket != null) socket.Close();
        if (token != null) token.Dispose();
    }

    private byte[] Sub(int length)
    {
        var bytes = new byte[length];
        System.Buffer.BlockCopy(buffer, 0, bytes, 0, length);
        return bytes;
    }

    // A state newer than the last one acted on: the move it asks for, if any.
    private void Play(string json)
    {
        var message = Json.Parse(json) as Dictionary<string, object>;
        object t, v, s;
        if (message == null || !message.TryGetValue("t", out t) || !"state".Equals(t)) return;
        if (!message.TryGetValue("v", out v) || !message.TryGetValue("s", out s)) return;
        long version = System.Convert.ToInt64(v);
        var view = s as Dictionary<string, object>;
        if (version <= actedVersion || view == null) return;
        actedVersion = version;
        string move = Move(view);
        if (move != null) client.SendJson("{\"t\": \"action\", \"a\": " + move + "}");  // false once ended
    }

    private string Move(Dictionary<string, object> view)
    {
        object flag, turn;
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
        if (!view.TryGetValue("turn", out turn) || !me.Equals(turn)) return null;
        var board = (List<object>)view["board"];
        for (int i = 0; i < board.Count; ++i)
            if ("".Equals(board[i])) return "{\"cell\": " + i + "}";
        return null;
    }
}
