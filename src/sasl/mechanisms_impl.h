// Constructors of the individual mechanisms and replies they share; internal
// to src/sasl/ (others use make_mechanism in mechanism.h).
#pragma once
#include <memory>
#include <string>

#include "sasl/mechanism.h"

namespace tern::sasl::detail {

std::unique_ptr<Mechanism> make_plain();
std::unique_ptr<Mechanism> make_login();
std::unique_ptr<Mechanism> make_cram_md5(std::string hostname, Entropy entropy);
std::unique_ptr<Mechanism> make_scram(ScramHash hash, Entropy entropy);

// 535 5.7.8 bad user/pass: wrong password, unknown user, no stored secret
// (PLAIN, LOGIN, CRAM-MD5; RFC 4954 6).
Step bad_user_pass();
// 451 4.3.0: the session called the mechanism out of sequence (a bug).
Step out_of_sequence();

}  // namespace tern::sasl::detail
