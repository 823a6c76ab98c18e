// The socket layer (socket.hpp): the POSIX path and the Winsock path.
#include "socket.hpp"

#include <climits>
#include <cstring>

#if !defined(_WIN32)
#  include <cerrno>
#  include <fcntl.h>
#  include <netinet/in.h>
#  include <netinet/tcp.h>
#  include <unistd.h>
#endif

namespace vinom::net {

#if defined(_WIN32)

// Winsock counts the calls itself: each WSAStartup is undone by one WSACleanup.
bool startup() {
    WSADATA data;
    int e = WSAStartup(MAKEWORD(2, 2), &data);
    if (e != 0) WSASetLastError(e);
    return e == 0;
}

void cleanup() { WSACleanup(); }

int last_error() { return WSAGetLastError(); }

std::string error_text(int error) {
    char text[256] = {0};
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
                             static_cast<DWORD>(error), 0, text, sizeof text, nullptr);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == '.')) --n;
    if (n == 0) return "Winsock error " + std::to_string(error);
    return std::string(text, n);
}

bool would_block(int error) { return error == WSAEWOULDBLOCK; }
bool in_progress(int error) { return error == WSAEWOULDBLOCK || error == WSAEINPROGRESS; }
bool interrupted(int error) { return error == WSAEINTR; }

bool refused(int error) { return error == WSAECONNRESET || error == WSAECONNREFUSED; }

socket_t open_stream(int family) {
    socket_t s = ::socket(family, SOCK_STREAM, IPPROTO_TCP);
    if (s == INVALID_SOCKET) return INVALID;
    u_long on = 1;
    if (ioctlsocket(s, FIONBIO, &on) != 0) {
        int e = WSAGetLastError();
        ::closesocket(s);
        WSASetLastError(e);
        return INVALID;
    }
    BOOL one = TRUE;
    (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&one), sizeof one);
    return s;
}

void close(socket_t& s) {
    if (s != INVALID) ::closesocket(s);
    s = INVALID;
}

int connect(socket_t s, const sockaddr* address, std::size_t length) {
    return ::connect(s, address, static_cast<int>(length)) == 0 ? 0 : -1;
}

int pending_error(socket_t s) {
    int error = 0;
    int length = sizeof error;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, reinterpret_cast<char*>(&error), &length) != 0)
        return WSAGetLastError();
    return error;
}

int poll(poll_t* entries, std::size_t n, int timeout_ms) {
    return WSAPoll(entries, static_cast<ULONG>(n), timeout_ms);
}

long receive(socket_t s, void* buffer, std::size_t size) {
    int n = ::recv(s, static_cast<char*>(buffer), static_cast<int>(size < INT_MAX ? size : INT_MAX), 0);
    return n == SOCKET_ERROR ? -1 : n;
}

long send(socket_t s, const void* data, std::size_t size) {
    int n = ::send(s, static_cast<const char*>(data), static_cast<int>(size < INT_MAX ? size : INT_MAX), 0);
    return n == SOCKET_ERROR ? -1 : n;
}

#else  // POSIX

bool startup() { return true; }
void cleanup() {}

int last_error() { return errno; }
std::string error_text(int error) { return std::strerror(error); }
bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK; }
bool in_progress(int error) { return error == EINPROGRESS; }
bool interrupted(int error) { return error == EINTR; }

bool refused(int error) { return error == ECONNREFUSED; }

socket_t open_stream(int family) {
    socket_t s = ::socket(family, SOCK_STREAM, 0);
    if (s < 0) return INVALID;
    int flags = fcntl(s, F_GETFL);
    if (flags < 0 || fcntl(s, F_SETFL, flags | O_NONBLOCK) != 0) {
        int e = errno;
        ::close(s);
        errno = e;
        return INVALID;
    }
#  if defined(SO_NOSIGPIPE)  // macOS and the BSDs: no MSG_NOSIGNAL
    int on = 1;
    (void)setsockopt(s, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on);
#  endif
    int one = 1;
    (void)setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return s;
}

void close(socket_t& s) {
    if (s != INVALID) ::close(s);
    s = INVALID;
}

int connect(socket_t s, const sockaddr* address, std::size_t length) {
    return ::connect(s, address, static_cast<socklen_t>(length)) == 0 ? 0 : -1;
}

int pending_error(socket_t s) {
    int error = 0;
    socklen_t length = sizeof error;
    if (getsockopt(s, SOL_SOCKET, SO_ERROR, &error, &length) != 0) return errno;
    return error;
}

int poll(poll_t* entries, std::size_t n, int timeout_ms) {
    return ::poll(entries, static_cast<nfds_t>(n), timeout_ms);
}

#  if defined(MSG_NOSIGNAL)
constexpr int NO_SIGNAL = MSG_NOSIGNAL;
#  else
constexpr int NO_SIGNAL = 0;  // SO_NOSIGPIPE, set by open_stream
#  endif

long receive(socket_t s, void* buffer, std::size_t size) {
    return static_cast<long>(::recv(s, buffer, size, 0));
}

long send(socket_t s, const void* data, std::size_t size) {
    return static_cast<long>(::send(s, data, size, NO_SIGNAL));
}

#endif

}  // namespace vinom::net
