// Disk full while storing mail (RFC 3463 3.4, X.3.1 "Mail system full";
// RFC 5321 4.2.2 452 "insufficient system storage"). A write that fails with
// ENOSPC or EDQUOT is temporary for the client: 452 4.3.1 rather than the
// generic 451 4.3.0. Errors of the worker threads reach the session as text,
// so the text of such a failure carries a fixed prefix the session can test.
#pragma once
#include <string>
#include <string_view>

namespace tern {

// ENOSPC (no space or no inodes left) or EDQUOT (quota exhausted).
bool is_storage_full(int err);
// `text` with the prefix that marks a disk-full failure.
std::string storage_full_error(std::string_view text);
// Whether an error text (from storage_full_error) reports a full disk.
bool is_storage_full_error(std::string_view text);
// "<what>: <strerror(err)>", marked by storage_full_error when `err` says
// the disk is full.
std::string system_error_text(std::string_view what, int err);

}  // namespace tern
