// doctest entry point of the session-dialogue tier (no sockets, no daemon).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
