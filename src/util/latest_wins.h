// Requests of one kind that run side by side and may finish in any order
// (a file loaded again on a worker after each reload): the latest request
// wins, so a result that comes after a later request's is dropped. Each
// request takes a ticket when it starts and hands it to its completion.
// Two ways to drop, for two kinds of result:
// - is_latest: only the last request started counts, for a result that
//   replaces the current one whatever it holds (an error included);
// - overtaken / put_in_force: a result counts unless a later request's is
//   already in force, for a result that may fail and then leaves the
//   current one alone (an earlier request that succeeded still counts
//   while a later one is under way, since that one may fail).
// Loop thread only.
#pragma once
#include <cstdint>

namespace tern {

class LatestWins {
public:
	// A new request's ticket; every request started before it is no longer
	// the latest.
	uint64_t start() { return ++started_; }
	// Whether no request started after `ticket`.
	bool is_latest(uint64_t ticket) const { return ticket == started_; }
	// Whether a request started after `ticket` has its result in force.
	bool overtaken(uint64_t ticket) const { return ticket < in_force_; }
	// `ticket`'s result is the one in force now.
	void put_in_force(uint64_t ticket) { in_force_ = ticket; }

private:
	uint64_t started_ = 0;
	uint64_t in_force_ = 0;
};

}  // namespace tern
