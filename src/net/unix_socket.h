// Unix stream sockets by path: the daemon's control and local submission
// sockets, and the clients (ternctl, sendmail.tern) that talk to them.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <sys/un.h>

#include "util/unique_fd.h"

namespace tern::net {

// The address of `path`; nullopt when it does not fit sun_path.
std::optional<sockaddr_un> unix_address(const std::string& path);

// A listening, non-blocking socket at `path` with file mode `mode` from its
// creation on (whatever the umask); a file already there is replaced.
// Returns the socket, or an empty one with errno set (nothing left
// behind): ENAMETOOLONG when the path does not fit.
UniqueFd listen_unix(const std::string& path, mode_t mode, int backlog);

// A blocking connection to `path`; an empty one with errno set on failure.
UniqueFd connect_unix(const std::string& path);

// Writes all of `data` to a blocking socket (no SIGPIPE); false on error.
bool send_all(int fd, std::string_view data);

// Best effort, for a last line before a close: writes what the socket's
// buffer takes now, never waits, no SIGPIPE.
void send_without_waiting(int fd, std::string_view data);

}  // namespace tern::net
