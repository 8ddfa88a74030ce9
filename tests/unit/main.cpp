// doctest entry point for the unit tests (pure code only, no sockets).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
