// Helpers shared by the dkim*.cpp files; not part of the public API.
#pragma once
#include <string>
#include <string_view>

#include "mailauth/dkim.h"

namespace tern::mailauth::dkim::detail {

// Modulus size of a DER RSA public key (SubjectPublicKeyInfo or PKCS#1
// RSAPublicKey); 0 when it does not parse as RSA.
int rsa_public_key_bits(std::string_view der);

// Signature checks (RFC 6376 6.1.3 step 4). The data is the header hash
// input; `hash` selects the digest.
bool rsa_verify(std::string_view public_der, HashAlg hash, std::string_view data, std::string_view signature,
                std::string* error);
bool ed25519_verify(std::string_view public_key, std::string_view data, std::string_view signature);

}  // namespace tern::mailauth::dkim::detail
