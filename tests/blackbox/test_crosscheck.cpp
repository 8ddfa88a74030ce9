// Cross-checks of ternctl against independent implementations, Debian's
// python3-spf (pyspf 2.0.14 over dnspython) and python3-dkim (dkimpy):
//  - SPF: every case of tests/unit/spf_cases.h (except the documented
//    departures of pyspf from RFC 7208) is served by a loopback DnsServer and
//    evaluated by both; the result words must agree, and tern's must be the
//    table's expected one.
//  - DKIM: dkimpy signs, `ternctl dkim verify` passes it (and fails it once
//    the body changes); `ternctl dkim genkey` + `dkim sign` signs, dkimpy
//    verifies.
// Loopback only: both sides resolve through the test's DnsServer.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <set>

#include "bb.h"
#include "blackbox/ternctl_run.h"
#include "unit/spf_cases.h"

namespace {

// pyspf with dnspython's default resolver pointed at 127.0.0.1:<port> (pyspf
// calls dns.resolver.query, which uses dns.resolver.default_resolver). One
// JSON request per line on stdin, one JSON answer per line on stdout, so the
// interpreter starts once for the whole table.
const char* pyspf_script = R"PY(
import json, sys, warnings
warnings.simplefilter("ignore")
import dns.resolver
import spf
print(json.dumps({"ready": spf.__version__}), flush=True)
for line in sys.stdin:
    c = json.loads(line)
    r = dns.resolver.Resolver(configure=False)
    r.nameservers = ["127.0.0.1"]
    r.port = c["port"]
    r.timeout = 3
    r.lifetime = 5
    r.cache = None
    dns.resolver.default_resolver = r
    try:
        res, exp = spf.check2(i=c["ip"], s=c["sender"], h=c["helo"], receiver=c["receiver"], querytime=10)
    except Exception as e:
        res, exp = "exception", "%s: %s" % (type(e).__name__, e)
    print(json.dumps({"result": res, "explanation": exp}), flush=True)
)PY";

// dkimpy: `sign KEY.pem SELECTOR DOMAIN ALGORITHM HEADER/BODY-CANON MESSAGE`
// prints the signed message; `verify MESSAGE N NAME TXT` prints True/False
// for each of the first N signatures, with NAME's key record TXT (one
// name/record pair; dnsfunc serves nothing else).
const char* dkimpy_script = R"PY(
import base64, re, sys
import dkim

def private_key(pem, algorithm):
    if algorithm == b"ed25519-sha256":
        # PKCS#8 Ed25519 (RFC 8410): the 32-byte seed ends the DER encoding.
        der = base64.b64decode(b"".join(l for l in pem.splitlines() if not l.startswith(b"-----")))
        return base64.b64encode(der[-32:])
    return pem

mode = sys.argv[1]
if mode == "sign":
    pem = open(sys.argv[2], "rb").read()
    algorithm = sys.argv[5].encode()
    header_canon, body_canon = sys.argv[6].encode().split(b"/")
    message = open(sys.argv[7], "rb").read()
    sig = dkim.sign(message, sys.argv[3].encode(), sys.argv[4].encode(), private_key(pem, algorithm),
                    canonicalize=(header_canon, body_canon), signature_algorithm=algorithm,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id"], linesep=b"\r\n")
    sys.stdout.buffer.write(sig + message)
elif mode == "verify":
    message = open(sys.argv[2], "rb").read()
    count = int(sys.argv[3])
    name, txt = sys.argv[4].lower().rstrip("."), sys.argv[5].encode()
    def dnsfunc(qname, timeout=5):
        if isinstance(qname, bytes):
            qname = qname.decode()
        return txt if qname.lower().rstrip(".") == name else None
    d = dkim.DKIM(message, minkey=1024)
    for i in range(count):
        try:
            ok = d.verify(idx=i, dnsfunc=dnsfunc)
        except dkim.DKIMException as e:
            ok = False
        print(ok)
)PY";

// A long-running child with line-based pipes on stdin/stdout.
class Coprocess {
public:
	explicit Coprocess(const std::vector<std::string>& argv) {
		int to_child[2], from_child[2];
		if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) return;
		pid_ = fork();
		if (pid_ == 0) {
			dup2(to_child[0], 0);
			dup2(from_child[1], 1);
			std::vector<char*> args;
			for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
			args.push_back(nullptr);
			execv(args[0], args.data());
			_exit(127);
		}
		close(to_child[0]);
		close(from_child[1]);
		in_ = to_child[1];
		out_ = from_child[0];
	}
	~Coprocess() {
		if (in_ >= 0) close(in_);
		if (out_ >= 0) close(out_);
		if (pid_ > 0) {
			int status = 0;
			for (int i = 0; i < 200 && waitpid(pid_, &status, WNOHANG) == 0; i++) usleep(10000);
			if (waitpid(pid_, &status, WNOHANG) == 0) {
				kill(pid_, SIGKILL);
				waitpid(pid_, &status, 0);
			}
		}
	}
	Coprocess(const Coprocess&) = delete;
	Coprocess& operator=(const Coprocess&) = delete;

	bool send(const std::string& line) {
		std::string data = line + "\n";
		size_t off = 0;
		while (off < data.size()) {
			ssize_t n = write(in_, data.data() + off, data.size() - off);
			if (n <= 0) return false;
			off += size_t(n);
		}
		return true;
	}
	// The next line, without "\n"; nullopt on EOF or after timeout_ms.
	std::optional<std::string> read_line(int timeout_ms) {
		auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
		for (;;) {
			size_t nl = buffer_.find('\n');
			if (nl != std::string::npos) {
				std::string line = buffer_.substr(0, nl);
				buffer_.erase(0, nl + 1);
				return line;
			}
			auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
			    deadline - std::chrono::steady_clock::now());
			if (left.count() <= 0) return std::nullopt;
			pollfd pfd{out_, POLLIN, 0};
			if (poll(&pfd, 1, int(left.count())) <= 0) continue;
			char buf[4096];
			ssize_t n = read(out_, buf, sizeof(buf));
			if (n <= 0) return std::nullopt;
			buffer_.append(buf, size_t(n));
		}
	}

private:
	pid_t pid_ = -1;
	int in_ = -1, out_ = -1;
	std::string buffer_;
};

// Loads one case's zone (spf_cases.h conventions) into a DnsServer.
void load_zone(DnsServer& dns, const std::vector<tern::spf_cases::ZoneRecord>& zone) {
	for (const auto& rec : zone) {
		if (rec.status == "temperror") {
			// SERVFAIL for the whole name: every case that has one expects
			// temperror from the first query of that name anyway.
			dns.add_servfail_name(rec.name);
		} else if (rec.status == "nxdomain") {
			// Unlisted names answer NXDOMAIN.
		} else if (rec.data.empty()) {
			// No data: the name must exist with some other type only.
			dns.add(rec.name, "NS", "ns.nodata.invalid");
		} else {
			for (const auto& value : rec.data) dns.add(rec.name, rec.type, value);
		}
	}
}

// The HELO argument as an SMTP server would get it, for ternctl; pyspf
// takes the address of an address literal, as tern uses it for %{h}.
std::string helo_for_pyspf(const std::string& helo) {
	if (helo.size() > 2 && helo.front() == '[' && helo.back() == ']') return helo.substr(1, helo.size() - 2);
	return helo;
}

std::string tmp_write(const std::string& dir, const std::string& name, const std::string& content) {
	std::string path = dir + "/" + name;
	write_file(path, content);
	return path;
}

const std::string message_text =
    "From: Alice <alice@test.example>\r\n"
    "To: Bob <bob@other.example>\r\n"
    "Subject: cross-check\r\n"
    "Date: 25 Nov 2026 10:00:00 +0000\r\n"
    "Message-Id: <cross1@test.example>\r\n"
    "Received: from somewhere\r\n"
    "\r\n"
    "Hello Bob,  \r\n"
    "\r\n"
    "a line with   spaces\tand tabs \r\n"
    "\r\n"
    "\r\n";

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

// A generated config and its DnsServer, without starting ternd.
DaemonOptions not_started() {
	DaemonOptions options;
	options.start = false;
	return options;
}

}  // namespace

TEST_CASE("cross-check: ternctl spf check agrees with python3-spf on the SPF case table") {
	using namespace tern::spf_cases;
	Coprocess python({debian_python(), "-c", pyspf_script});
	auto ready = python.read_line(15000);
	REQUIRE_MESSAGE(ready.has_value(),
	                "python3-spf did not start (is python3-spf installed for /usr/bin/python3?)");
	REQUIRE_MESSAGE(contains(*ready, "ready"), *ready);

	std::set<std::string> skipped;
	for (const auto& [name, why] : pyspf_known_differences()) skipped.insert(name);

	int compared = 0;
	for (const Case& c : cases()) {
		CAPTURE(c.name);
		DnsServer dns;
		load_zone(dns, c.zone);
		std::vector<std::string> args{"--dns", dns.address(), "spf",
		                              "check", c.ip,          c.sender.empty() ? "<>" : c.sender};
		if (!c.helo.empty()) args.push_back(c.helo);
		ProgramResult tern = run_ternctl(args);
		CAPTURE(tern.both());
		REQUIRE(tern.exit_code == 0);
		std::string tern_word = first_line(tern.out);
		// End to end through udns, tern still gives the table's answer.
		CHECK(tern_word == c.result);

		if (skipped.count(c.name)) continue;
		nlohmann::json request = {{"port", dns.port()},
		                          {"ip", c.ip},
		                          {"sender", c.sender},
		                          {"helo", helo_for_pyspf(c.helo)},
		                          {"receiver", spf_case_receiver}};
		REQUIRE(python.send(request.dump()));
		auto answer = python.read_line(30000);
		REQUIRE_MESSAGE(answer.has_value(), "python3-spf gave no answer");
		auto reply = nlohmann::json::parse(*answer);
		std::string py_word = reply["result"].get<std::string>();
		CAPTURE(reply["explanation"].get<std::string>());
		CHECK_MESSAGE(tern_word == py_word, "ternctl: " << tern_word << ", python3-spf: " << py_word);
		compared++;
	}
	// The table is the point of the check: make sure it was really run.
	CHECK(compared >= int(cases().size() - skipped.size()));
	CHECK(compared > 150);
}

TEST_CASE("cross-check: python3-dkim signs, ternctl dkim verify passes it and fails a changed body") {
	TernDaemon setup(not_started());
	std::string dir = setup.dir();
	DnsServer& dns = setup.dns();

	struct KeySpec {
		std::string type, selector, algorithm;
		std::vector<std::string> extra;
	};
	std::vector<KeySpec> keys = {
	    {"rsa", "pyrsa", "rsa-sha256", {"--bits", "2048"}},
	    {"ed25519", "pyed", "ed25519-sha256", {}},
	};
	for (const auto& key : keys) {
		std::vector<std::string> gen{"dkim", "genkey", key.type, "--out", dir + "/" + key.selector + ".pem"};
		gen.insert(gen.end(), key.extra.begin(), key.extra.end());
		ProgramResult g = run_ternctl(gen, "", 60000);
		REQUIRE_MESSAGE(g.exit_code == 0, g.both());
		dns.add(key.selector + "._domainkey.test.example", "TXT", first_line(g.out));

		for (std::string canon : {"relaxed/simple", "simple/simple", "relaxed/relaxed", "simple/relaxed"}) {
			CAPTURE(key.algorithm);
			CAPTURE(canon);
			std::string msg_path = tmp_write(dir, "plain.eml", message_text);
			ProgramResult py = run_program({debian_python(), "-c", dkimpy_script, "sign",
			                                dir + "/" + key.selector + ".pem", key.selector, "test.example",
			                                key.algorithm, canon, msg_path});
			REQUIRE_MESSAGE(py.exit_code == 0, py.err);
			REQUIRE(starts_with(py.out, "DKIM-Signature: "));
			REQUIRE(ends_with(py.out, message_text));

			std::string signed_path = tmp_write(dir, "signed.eml", py.out);
			ProgramResult v = run_ternctl({"--dns", dns.address(), "dkim", "verify", signed_path});
			CHECK(v.exit_code == 0);
			CHECK(v.out == "pass d=test.example s=" + key.selector + " a=" + key.algorithm + "\n");

			std::string tampered = py.out;
			tampered.replace(tampered.find("Hello Bob,"), 10, "Hello Eve,");
			v = run_ternctl({"--dns", dns.address(), "dkim", "verify"}, tampered);
			CHECK(v.exit_code == 1);
			CHECK(starts_with(
			    v.out, "fail d=test.example s=" + key.selector + " a=" + key.algorithm + " error=\""));
		}
	}

	// RFC 8301 3.1: a correct rsa-sha1 signature is still never a pass.
	std::string msg_path = tmp_write(dir, "plain.eml", message_text);
	ProgramResult py = run_program({debian_python(), "-c", dkimpy_script, "sign", dir + "/pyrsa.pem", "pyrsa",
	                                "test.example", "rsa-sha1", "relaxed/relaxed", msg_path});
	REQUIRE_MESSAGE(py.exit_code == 0, py.err);
	ProgramResult v = run_ternctl({"--dns", dns.address(), "dkim", "verify"}, py.out);
	CHECK(v.exit_code == 1);
	CHECK(v.out ==
	      "permerror d=test.example s=pyrsa a=rsa-sha1 error=\"dkim: hash algorithm not allowed: \\\"rsa-sha1\\\" "
	      "uses sha1 (RFC 8301)\"\n");
}

TEST_CASE("cross-check: ternctl dkim genkey + sign, python3-dkim verifies") {
	TernDaemon setup(not_started());
	std::string dir = setup.dir();

	ProgramResult rsa = run_ternctl({"dkim", "genkey", "rsa", "--out", dir + "/rsa1.pem"}, "", 60000);
	REQUIRE_MESSAGE(rsa.exit_code == 0, rsa.both());
	ProgramResult ed = run_ternctl({"dkim", "genkey", "ed25519", "--out", dir + "/ed1.pem"});
	REQUIRE_MESSAGE(ed.exit_code == 0, ed.both());
	std::string rsa_txt = first_line(rsa.out), ed_txt = first_line(ed.out);

	setup.write_config(R"({"domains": {"test.example": {"dkim": {
		"selectors": {
			"rsa1": {"private_key_file": "rsa1.pem", "canonicalization": "simple/simple"},
			"ed1": {"private_key_file": "ed1.pem", "canonicalization": "relaxed/relaxed"}},
		"sign": ["rsa1", "ed1"]}}}})");
	std::string msg_path = tmp_write(dir, "plain.eml", message_text);
	ProgramResult s = run_ternctl({"-c", setup.config_path(), "dkim", "sign", msg_path});
	REQUIRE_MESSAGE(s.exit_code == 0, s.err);
	REQUIRE(ends_with(s.out, message_text));
	std::string signed_path = tmp_write(dir, "signed.eml", s.out);

	// Header order: the rsa1 signature first, then ed1.
	std::string sigs = unfold(s.out.substr(0, s.out.size() - message_text.size()));
	size_t rsa_at = sigs.find("s=rsa1;"), ed_at = sigs.find("s=ed1;");
	REQUIRE(rsa_at != std::string::npos);
	REQUIRE(ed_at != std::string::npos);
	CHECK(rsa_at < ed_at);

	// dkimpy verifies the signature whose key its dnsfunc serves, and
	// rejects the other one (no key for it).
	ProgramResult py = run_program({debian_python(), "-c", dkimpy_script, "verify", signed_path, "2",
	                                "rsa1._domainkey.test.example", rsa_txt});
	INFO(py.err);
	CHECK(py.exit_code == 0);
	CHECK(py.out == "True\nFalse\n");
	py = run_program(
	    {debian_python(), "-c", dkimpy_script, "verify", signed_path, "2", "ed1._domainkey.test.example", ed_txt});
	INFO(py.err);
	CHECK(py.exit_code == 0);
	CHECK(py.out == "False\nTrue\n");

	// A changed body fails there too.
	std::string tampered = s.out;
	tampered.replace(tampered.find("Hello Bob,"), 10, "Hello Eve,");
	std::string tampered_path = tmp_write(dir, "tampered.eml", tampered);
	py = run_program({debian_python(), "-c", dkimpy_script, "verify", tampered_path, "2",
	                  "ed1._domainkey.test.example", ed_txt});
	CHECK(py.out == "False\nFalse\n");

	// And ternctl agrees with itself through DNS.
	setup.dns().add("rsa1._domainkey.test.example", "TXT", rsa_txt);
	setup.dns().add("ed1._domainkey.test.example", "TXT", ed_txt);
	ProgramResult v = run_ternctl({"--dns", setup.dns().address(), "dkim", "verify", signed_path});
	CHECK(v.exit_code == 0);
	CHECK(v.out == "pass d=test.example s=rsa1 a=rsa-sha256\npass d=test.example s=ed1 a=ed25519-sha256\n");
}
