// TLS and SASL tooling for the black-box tests: self-signed certificates
// made with openssl, `openssl s_client` probes, and real SMTP clients run
// as processes (Python's smtplib and ssl, gsasl), each with a deadline.
#pragma once
#include <string>
#include <vector>

#include "helpers/daemon.h"

namespace tern::testing {

// A self-signed P-256 certificate with subjectAltName DNS:localhost in its
// own temp dir (removed by the destructor). The subject's CN is cn, so a
// regenerated certificate can be told apart by subject and fingerprint.
class TestCert {
public:
	explicit TestCert(const std::string& cn = "localhost");  // throws when openssl fails
	~TestCert();
	TestCert(const TestCert&) = delete;
	TestCert& operator=(const TestCert&) = delete;

	const std::string& dir() const { return dir_; }
	std::string cert_file() const { return dir_ + "/cert.pem"; }
	std::string key_file() const { return dir_ + "/key.pem"; }
	// Makes a new key and certificate and renames them over cert_file() and
	// key_file() (key first), as an administrator replacing files would.
	void regenerate(const std::string& cn);
	// SHA-256 fingerprint of cert_file(), "AB:CD:…".
	std::string fingerprint() const;
	// patch with {"tls": {"cert_file": …, "key_file": …}} merged in.
	std::string config_patch(const std::string& patch = "") const;

private:
	void generate(const std::string& cn, const std::string& cert_path, const std::string& key_path);
	std::string dir_;
};

// A throw-away certificate authority (P-256, made with openssl) in its own
// temp dir, removed by the destructor, that issues server certificates.
class TestCa {
public:
	TestCa();  // throws when openssl fails
	~TestCa();
	TestCa(const TestCa&) = delete;
	TestCa& operator=(const TestCa&) = delete;

	std::string ca_file() const { return dir_ + "/ca.pem"; }
	struct Issued {
		std::string cert_file, key_file;
	};
	// A certificate for dns_name (CN and subjectAltName DNS, plus IP
	// 127.0.0.1) signed by this CA; files named after dns_name.
	Issued issue(const std::string& dns_name) const;

private:
	std::string dir_;
};

// DaemonOptions with the smtp listener plus the given ones.
DaemonOptions daemon_options(bool submission, bool submissions, const std::string& patch = "", bool start = true);

// RFC 7386 merge of two JSON merge patches ("" counts as {}).
std::string merge_patches(const std::string& a, const std::string& b);

// SHA-256 fingerprint ("AB:CD:…") of the first PEM certificate in pem_text;
// "" when there is none or openssl fails.
std::string pem_fingerprint(const std::string& pem_text);

// What `openssl s_client` saw on one connection.
struct TlsProbe {
	bool handshake_ok = false;  // a session with a cipher was set up
	std::string protocol;       // "TLSv1.2"
	std::string cipher;         // OpenSSL name, e.g. "ECDHE-ECDSA-AES128-GCM-SHA256"
	std::string subject;        // e.g. "CN = localhost"
	std::string fingerprint;    // of the certificate the server presented
	std::string output;         // everything s_client printed
};

// `openssl s_client [-starttls smtp] -connect 127.0.0.1:PORT`, stdin empty,
// ≤ 15 s. extra: more s_client options (e.g. {"-tls1_3"}).
TlsProbe openssl_probe(int port, bool starttls, const std::vector<std::string>& extra = {});

// One reply as a Python client saw it: its lines.
struct ScriptReply {
	std::vector<std::string> lines;
	std::string last() const { return lines.empty() ? std::string() : lines.back(); }
	// last() without the " (<received-id>)" suffix
	std::string plain() const;
};

// The result of a scripted Python SMTP session.
struct ScriptResult {
	RunResult run;                     // exit code and the whole output
	std::vector<ScriptReply> replies;  // in order, the greeting first
	size_t preamble = 1;               // replies before the first command's: greeting (+ EHLO, STARTTLS)
	std::string cipher;                // "TLSv1.2 ECDHE-…" once TLS is up, else ""
	std::string error;                 // the script's "ERROR …" line, if any
	// The reply to the n-th command (0-based; the preamble is not counted).
	ScriptReply reply_to(size_t n) const;
};

// How a scripted session starts.
enum class TlsMode {
	plain,     // no TLS (commands may include "@STARTTLS")
	starttls,  // greeting, EHLO, STARTTLS (must get 220), handshake; then the commands
	implicit,  // TLS from the first byte (submissions)
};

// Runs a Python ssl client against 127.0.0.1:port, trusting ca_file for the
// name "localhost" (an empty ca_file turns verification off; so in the other
// Python clients below). Every command is a line sent (CRLF added), whose reply
// is read; special commands:
//   "@STARTTLS"          sends STARTTLS, reads the reply, handshakes when 220
//   "@HOLD READY GO"     creates file READY, then waits (≤ 30 s) until file GO exists
//   "@DATA <text>"       sends <text> as is (a message body ending in "\r\n.\r\n"), reads the reply
//   "@CHECKDIR <dir>"    prints "FILES <n> <names…>" for <dir> right away (no reply read)
// The replies and "CIPHER" line are parsed into the result.
ScriptResult run_smtp_script(TlsMode mode, int port, const std::string& ca_file,
                             const std::vector<std::string>& commands, int timeout_ms = 30000);

// Python smtplib: connects ("starttls" on a submission port, or "implicit"
// with SMTP_SSL), EHLO, forces `mechanism` (PLAIN, LOGIN or CRAM-MD5) through
// SMTP.auth with smtplib's own auth_plain/auth_login/auth_cram_md5, prints
// "AUTH <code> <text>". When mail_from is set it then sends `message` with
// sendmail and prints "SENT ok" or "SENT error …", and, when check_dir is
// set, "FILES <n>" for that directory right after the 250.
struct SmtplibLogin {
	TlsMode mode = TlsMode::starttls;
	int port = 0;
	std::string ca_file;
	std::string user, password, mechanism;
	std::string mail_from, rcpt_to, message, check_dir;
};
RunResult run_smtplib(const SmtplibLogin& login, int timeout_ms = 30000);

// gsasl --smtp over STARTTLS, connecting to "localhost" so the certificate
// name matches: `gsasl -a USER -p PASS --mechanism MECH --smtp --no-cb
// --x509-ca-file=CA localhost PORT`.
RunResult run_gsasl_starttls(int port, const std::string& user, const std::string& password,
                             const std::string& mechanism, const std::string& ca_file, int timeout_ms = 30000);

// gsasl as a bare SASL client (`gsasl --client --quiet`, stdin/stdout) with a
// Python ssl socket as the implicit-TLS transport relaying the 334
// challenges. Prints "RESULT <final reply line>".
RunResult run_gsasl_implicit(int port, const std::string& user, const std::string& password,
                             const std::string& mechanism, const std::string& ca_file, int timeout_ms = 30000);

// The value after "RESULT " / "AUTH " / … in output: the rest of the first
// line starting with prefix, "" when none.
std::string output_line(const std::string& output, const std::string& prefix);

// RFC 4648 base64 with padding (for AUTH data).
std::string base64(const std::string& data);
// The AUTH PLAIN response (RFC 4616): base64(authz NUL authc NUL password).
std::string plain_response(const std::string& authc, const std::string& password, const std::string& authz = "");

// `ternctl -c CONFIG passwd ACCOUNT` with the password on stdin; true on exit 0.
bool set_password(const TernDaemon& daemon, const std::string& account, const std::string& password,
                  std::string* output = nullptr);

}  // namespace tern::testing
