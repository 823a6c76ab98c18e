// The socket layer under the lobby's TCP connection: one set of calls over
// POSIX sockets and over Winsock (Windows), so no caller spells errno,
// fcntl, poll or close itself. Non-blocking only; no function blocks.
#pragma once

#include <cstddef>
#include <string>

#if defined(_WIN32)
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#  ifndef NOMINMAX
#    define NOMINMAX
#  endif
#  include <winsock2.h>
#  include <ws2tcpip.h>
#else
#  include <arpa/inet.h>
#  include <netdb.h>
#  include <netinet/in.h>
#  include <poll.h>
#  include <sys/socket.h>
#endif

namespace vinom::net {

#if defined(_WIN32)
using socket_t = SOCKET;
constexpr socket_t INVALID = INVALID_SOCKET;
using poll_t = WSAPOLLFD;
#else
using socket_t = int;
constexpr socket_t INVALID = -1;
using poll_t = pollfd;
#endif

// Winsock's WSAStartup (each successful call needs one cleanup(), WSACleanup);
// nothing on POSIX. False: the system's error is last_error().
bool startup();
void cleanup();

// The last socket call's error: errno, or WSAGetLastError().
int last_error();
// Its text (strerror, or FormatMessage's).
std::string error_text(int error);
// The kinds of error a non-blocking caller tells apart.
bool would_block(int error);   // EAGAIN, EWOULDBLOCK / WSAEWOULDBLOCK
bool in_progress(int error);   // a connect under way: EINPROGRESS / WSAEWOULDBLOCK
bool interrupted(int error);   // EINTR / WSAEINTR
// A UDP peer's closed port, from its ICMP "port unreachable" on a connected
// socket: ECONNREFUSED / WSAECONNRESET (Winsock's word for it on UDP) or
// WSAECONNREFUSED.
bool refused(int error);

// A TCP socket of `family`, non-blocking, no Nagle (INVALID: last_error()).
socket_t open_stream(int family);
// close / closesocket; `s` becomes INVALID.
void close(socket_t& s);
// connect(2): 0 done, -1 with last_error() (in_progress() while it connects).
int connect(socket_t s, const sockaddr* address, std::size_t length);
// The error a finished connect left (SO_ERROR), 0 for none.
int pending_error(socket_t s);
// poll / WSAPoll over `n` entries, `timeout_ms` (0: never blocks).
int poll(poll_t* entries, std::size_t n, int timeout_ms);
// recv / send without blocking and without SIGPIPE: bytes, or -1 with last_error().
long receive(socket_t s, void* buffer, std::size_t size);
long send(socket_t s, const void* data, std::size_t size);

}  // namespace vinom::net
