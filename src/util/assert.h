// Invariant checks (doc/design.md "One lifetime rule"): active in every
// build without NDEBUG (the normal and the debug build), compiled out with
// NDEBUG. A failed check aborts with the condition and why it must hold.
#pragma once
#include <cassert>

#define TERN_ASSERT(cond, why) assert((cond) && (why))
