// Gives back the memory that start-up touched but the idle daemon does not
// use: code and read-only pages of the binary and its libraries that were
// faulted in while opening the database, loading keys and certificates
// (Linux MADV_PAGEOUT: the pages stay in the page cache and come back on the
// next use), and free heap (malloc_trim). Called once after start-up; the
// low-memory VPS target is measured at idle.
#pragma once

namespace tern::core {

void trim_startup_memory();

}  // namespace tern::core
