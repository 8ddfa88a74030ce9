#include "helpers/tls_tools.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "helpers/session.h"
#include "helpers/smtp_client.h"

namespace tern::testing {

namespace {

const char* const python = "/usr/bin/python3";
const char* const timeout_tool = "/usr/bin/timeout";

// A scripted SMTP session over Python's ssl module. Output lines:
// "S: <reply line>", "C: <command>", "CIPHER <version> <name>",
// "FILES <n> <names…>", "ERROR <what>". A reply ends with "R." so the C++
// side can split replies without parsing continuation dashes.
const char* const smtp_script_py = R"PY(
import os, socket, ssl, sys, time
mode, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
commands = sys.argv[4:]
ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
sock = socket.create_connection(("127.0.0.1", port), timeout=10)
buf = b""
def readline():
    global buf
    while b"\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        buf += chunk
    line, buf = buf.split(b"\n", 1)
    return line.rstrip(b"\r").decode("utf-8", "replace")
def reply():
    while True:
        line = readline()
        print("S: " + line, flush=True)
        if len(line) < 4 or line[3] != "-":
            print("R.", flush=True)
            return line
def send(data):
    sock.sendall(data.encode())
def starttls():
    global sock, buf
    print("C: STARTTLS", flush=True)
    send("STARTTLS\r\n")
    line = reply()
    if line.startswith("220"):
        if buf:
            print("ERROR bytes after 220: %r" % buf, flush=True)
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
        c = sock.cipher()
        print("CIPHER %s %s" % (c[1], c[0]), flush=True)
try:
    if mode == "implicit":
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    reply()
    if mode == "starttls":
        print("C: EHLO client.sender.example", flush=True)
        send("EHLO client.sender.example\r\n")
        reply()
        starttls()
    elif mode == "implicit":
        c = sock.cipher()
        print("CIPHER %s %s" % (c[1], c[0]), flush=True)
    for cmd in commands:
        if cmd == "@STARTTLS":
            starttls()
        elif cmd.startswith("@HOLD "):
            ready, go = cmd.split(" ")[1:3]
            open(ready, "w").close()
            deadline = time.time() + 30
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.02)
        elif cmd.startswith("@DATA "):
            print("C: <message>", flush=True)
            send(cmd[6:])
            reply()
        elif cmd.startswith("@CHECKDIR "):
            d = cmd[10:]
            names = sorted(os.listdir(d)) if os.path.isdir(d) else []
            print("FILES %d %s" % (len(names), " ".join(names)), flush=True)
        else:
            print("C: " + cmd, flush=True)
            send(cmd + "\r\n")
            reply()
except Exception as e:
    print("ERROR %s: %s" % (type(e).__name__, e), flush=True)
    sys.exit(1)
)PY";

// smtplib with a forced mechanism (SMTP.auth with smtplib's own
// authobjects), optionally sending one message.
const char* const smtplib_py = R"PY(
import os, smtplib, ssl, sys
mode, port, cafile, user, pw, mech = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
mail_from, rcpt_to, msgfile, checkdir = sys.argv[7:11]
ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
if mode == "implicit":
    s = smtplib.SMTP_SSL("localhost", port, context=ctx, timeout=10)
else:
    s = smtplib.SMTP("localhost", port, timeout=10)
    s.ehlo()
    print("STARTTLS %d" % s.starttls(context=ctx)[0], flush=True)
s.ehlo()
c = s.sock.cipher()
print("CIPHER %s %s" % (c[1], c[0]), flush=True)
print("EHLO-AUTH " + s.esmtp_features.get("auth", "").strip(), flush=True)
s.user, s.password = user, pw
authobject = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
try:
    code, text = s.auth(mech, authobject)
    print("AUTH %d %s" % (code, text.decode()), flush=True)
except smtplib.SMTPAuthenticationError as e:
    print("AUTH %d %s" % (e.smtp_code, e.smtp_error.decode()), flush=True)
    sys.exit(0)
if mail_from:
    try:
        s.sendmail(mail_from, [rcpt_to], open(msgfile, "rb").read())
        print("SENT ok", flush=True)
        if checkdir:
            names = sorted(os.listdir(checkdir)) if os.path.isdir(checkdir) else []
            print("FILES %d %s" % (len(names), " ".join(names)), flush=True)
    except smtplib.SMTPException as e:
        print("SENT error %r" % (e,), flush=True)
s.quit()
)PY";

// Relays gsasl's client steps (stdin/stdout mode) over an implicit-TLS
// SMTP connection: gsasl has no implicit-TLS option of its own.
const char* const gsasl_relay_py = R"PY(
import socket, ssl, subprocess, sys
port, user, pw, mech, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        if not line:
            print("RESULT eof", flush=True)
            sys.exit(1)
        line = line.rstrip(b"\r\n").decode()
        print("S: " + line, flush=True)
        if len(line) < 4 or line[3] != "-":
            return line
def send(line):
    print("C: " + line, flush=True)
    s.sendall((line + "\r\n").encode())
reply()
send("EHLO client.sender.example")
reply()
g = subprocess.Popen(["gsasl", "--client", "--quiet", "--no-cb", "--mechanism", mech, "-a", user, "-p", pw],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
first_line = g.stdout.readline().strip()
if first_line != mech:
    print("RESULT gsasl said %r" % first_line, flush=True)
    sys.exit(1)
send("AUTH " + mech + " " + g.stdout.readline().strip())
while True:
    last = reply()
    if not last.startswith("334 "):
        break
    g.stdin.write(last[4:] + "\n")
    g.stdin.flush()
    send(g.stdout.readline().strip())
try:
    g.stdin.close()
    g.wait(timeout=5)
except Exception:
    g.kill()
send("QUIT")
reply()
print("RESULT " + last, flush=True)
)PY";

// Writes script into a fresh temp dir and runs python3 on it with args.
RunResult run_python(const char* script, const std::vector<std::string>& args, int timeout_ms) {
	std::string dir = make_temp_dir("tern-py-");
	std::string path = dir + "/script.py";
	write_file(path, script);
	std::vector<std::string> argv{timeout_tool, "-k", "2", std::to_string(timeout_ms / 1000 + 1), python, path};
	argv.insert(argv.end(), args.begin(), args.end());
	RunResult r = run_command(argv, timeout_ms + 5000);
	remove_tree(dir);
	return r;
}

std::vector<std::string> split_lines(const std::string& text) {
	std::vector<std::string> lines;
	size_t start = 0;
	while (start < text.size()) {
		size_t end = text.find('\n', start);
		if (end == std::string::npos) end = text.size();
		std::string line = text.substr(start, end - start);
		if (!line.empty() && line.back() == '\r') line.pop_back();
		lines.push_back(line);
		start = end + 1;
	}
	return lines;
}

}  // namespace

DaemonOptions daemon_options(bool submission, bool submissions, const std::string& patch, bool start) {
	DaemonOptions o;
	o.submission = submission;
	o.submissions = submissions;
	o.config_patch = patch;
	o.start = start;
	return o;
}

std::string merge_patches(const std::string& a, const std::string& b) {
	nlohmann::json merged = a.empty() ? nlohmann::json::object() : nlohmann::json::parse(a);
	if (!b.empty()) merged.merge_patch(nlohmann::json::parse(b));
	return merged.dump();
}

TestCert::TestCert(const std::string& cn) {
	dir_ = make_temp_dir("tern-cert-");
	generate(cn, cert_file(), key_file());
}

TestCert::~TestCert() {
	if (!getenv("TERN_KEEP_TMP")) remove_tree(dir_);
}

void TestCert::generate(const std::string& cn, const std::string& cert_path, const std::string& key_path) {
	RunResult r = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
	                           "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + cn, "-addext",
	                           "subjectAltName=DNS:localhost", "-days", "2", "-keyout", key_path, "-out",
	                           cert_path},
	                          15000);
	if (r.exit_code != 0 || !file_exists(cert_path) || !file_exists(key_path))
		throw std::runtime_error("openssl req failed: " + r.output);
}

void TestCert::regenerate(const std::string& cn) {
	std::string cert_new = dir_ + "/cert.new.pem", key_new = dir_ + "/key.new.pem";
	generate(cn, cert_new, key_new);
	if (rename(key_new.c_str(), key_file().c_str()) != 0 || rename(cert_new.c_str(), cert_file().c_str()) != 0)
		throw std::runtime_error("renaming the new certificate into place failed");
}

TestCa::TestCa() {
	dir_ = make_temp_dir("tern-ca-");
	RunResult r = run_command({"/usr/bin/openssl",
	                           "req",
	                           "-x509",
	                           "-newkey",
	                           "ec",
	                           "-pkeyopt",
	                           "ec_paramgen_curve:P-256",
	                           "-nodes",
	                           "-subj",
	                           "/CN=tern test CA",
	                           "-addext",
	                           "basicConstraints=critical,CA:TRUE",
	                           "-addext",
	                           "keyUsage=critical,keyCertSign,cRLSign",
	                           "-days",
	                           "2",
	                           "-keyout",
	                           dir_ + "/ca.key",
	                           "-out",
	                           ca_file()},
	                          15000);
	if (r.exit_code != 0 || !file_exists(ca_file()))
		throw std::runtime_error("openssl req (CA) failed: " + r.output);
}

TestCa::~TestCa() {
	if (!getenv("TERN_KEEP_TMP")) remove_tree(dir_);
}

TestCa::Issued TestCa::issue(const std::string& dns_name) const {
	Issued out{dir_ + "/" + dns_name + ".pem", dir_ + "/" + dns_name + ".key"};
	const std::string csr = dir_ + "/" + dns_name + ".csr", ext = dir_ + "/" + dns_name + ".ext";
	write_file(ext, "subjectAltName=DNS:" + dns_name + ",IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
	RunResult r = run_command({"/usr/bin/openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
	                           "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=" + dns_name, "-keyout",
	                           out.key_file, "-out", csr},
	                          15000);
	if (r.exit_code != 0) throw std::runtime_error("openssl req (leaf) failed: " + r.output);
	r = run_command({"/usr/bin/openssl", "x509", "-req", "-in", csr, "-CA", ca_file(), "-CAkey", dir_ + "/ca.key",
	                 "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", out.cert_file},
	                15000);
	if (r.exit_code != 0 || !file_exists(out.cert_file))
		throw std::runtime_error("openssl x509 (sign) failed: " + r.output);
	return out;
}

std::string TestCert::fingerprint() const { return pem_fingerprint(read_file(cert_file())); }

std::string TestCert::config_patch(const std::string& patch) const {
	nlohmann::json tls = {{"tls", {{"cert_file", cert_file()}, {"key_file", key_file()}}}};
	return merge_patches(tls.dump(), patch);
}

std::string pem_fingerprint(const std::string& pem_text) {
	const std::string begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----";
	size_t b = pem_text.find(begin);
	size_t e = b == std::string::npos ? std::string::npos : pem_text.find(end, b);
	if (e == std::string::npos) return "";
	std::string dir = make_temp_dir("tern-fp-");
	write_file(dir + "/c.pem", pem_text.substr(b, e + end.size() - b) + "\n");
	RunResult r = run_command(
	    {"/usr/bin/openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", dir + "/c.pem"}, 10000);
	remove_tree(dir);
	if (r.exit_code != 0) return "";
	// "sha256 Fingerprint=AB:CD:…" (the prefix's case varies by version)
	size_t eq = r.output.find('=');
	if (eq == std::string::npos) return "";
	std::string fp = r.output.substr(eq + 1);
	while (!fp.empty() && (fp.back() == '\n' || fp.back() == '\r')) fp.pop_back();
	return fp;
}

TlsProbe openssl_probe(int port, bool starttls, const std::vector<std::string>& extra) {
	std::vector<std::string> argv{timeout_tool, "-k", "2", "15", "/usr/bin/openssl", "s_client"};
	if (starttls) {
		argv.push_back("-starttls");
		argv.push_back("smtp");
	}
	argv.push_back("-connect");
	argv.push_back("127.0.0.1:" + std::to_string(port));
	argv.push_back("-servername");
	argv.push_back("localhost");
	argv.insert(argv.end(), extra.begin(), extra.end());
	TlsProbe probe;
	RunResult r = run_command(argv, 20000);
	probe.output = r.output;
	for (const std::string& line : split_lines(r.output)) {
		std::string trimmed = line.substr(std::min(line.find_first_not_of(" \t"), line.size()));
		if (starts_with(trimmed, "Protocol  : "))
			probe.protocol = trimmed.substr(12);
		else if (starts_with(trimmed, "Cipher    : "))
			probe.cipher = trimmed.substr(12);
		else if (starts_with(trimmed, "subject="))
			probe.subject = trimmed.substr(8);
	}
	probe.handshake_ok = !probe.cipher.empty() && probe.cipher != "0000" && probe.cipher != "(NONE)";
	probe.fingerprint = pem_fingerprint(r.output);
	return probe;
}

std::string ScriptReply::plain() const { return strip_received_id(last()); }

ScriptReply ScriptResult::reply_to(size_t n) const {
	if (n + preamble < replies.size()) return replies[n + preamble];
	return {};
}

ScriptResult run_smtp_script(TlsMode mode, int port, const std::string& ca_file,
                             const std::vector<std::string>& commands, int timeout_ms) {
	std::vector<std::string> args{mode == TlsMode::plain          ? "plain"
	                                  : mode == TlsMode::starttls ? "starttls"
	                                                              : "implicit",
	                              std::to_string(port), ca_file};
	args.insert(args.end(), commands.begin(), commands.end());
	ScriptResult result;
	result.preamble = mode == TlsMode::starttls ? 3 : 1;
	result.run = run_python(smtp_script_py, args, timeout_ms);
	ScriptReply current;
	for (const std::string& line : split_lines(result.run.output)) {
		if (starts_with(line, "S: ")) {
			current.lines.push_back(line.substr(3));
		} else if (line == "R.") {
			result.replies.push_back(current);
			current = {};
		} else if (starts_with(line, "CIPHER ")) {
			result.cipher = line.substr(7);
		} else if (starts_with(line, "ERROR ")) {
			result.error = line.substr(6);
		}
	}
	return result;
}

RunResult run_smtplib(const SmtplibLogin& login, int timeout_ms) {
	std::string dir = make_temp_dir("tern-msg-");
	std::string msgfile = dir + "/message.eml";
	write_file(msgfile, login.message);
	RunResult r = run_python(smtplib_py,
	                         {login.mode == TlsMode::implicit ? "implicit" : "starttls", std::to_string(login.port),
	                          login.ca_file, login.user, login.password, login.mechanism, login.mail_from,
	                          login.rcpt_to, msgfile, login.check_dir},
	                         timeout_ms);
	remove_tree(dir);
	return r;
}

RunResult run_gsasl_starttls(int port, const std::string& user, const std::string& password,
                             const std::string& mechanism, const std::string& ca_file, int timeout_ms) {
	return run_command({timeout_tool, "-k", "2", std::to_string(timeout_ms / 1000 + 1), "/usr/bin/gsasl", "-a",
	                    user, "-p", password, "--mechanism", mechanism, "--smtp", "--no-cb",
	                    "--x509-ca-file=" + ca_file, "localhost", std::to_string(port)},
	                   timeout_ms + 5000);
}

RunResult run_gsasl_implicit(int port, const std::string& user, const std::string& password,
                             const std::string& mechanism, const std::string& ca_file, int timeout_ms) {
	return run_python(gsasl_relay_py, {std::to_string(port), user, password, mechanism, ca_file}, timeout_ms);
}

std::string output_line(const std::string& output, const std::string& prefix) {
	for (const std::string& line : split_lines(output))
		if (starts_with(line, prefix)) return line.substr(prefix.size());
	return "";
}

std::string base64(const std::string& data) {
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	std::string out;
	size_t i = 0;
	for (; i + 2 < data.size(); i += 3) {
		unsigned v = (unsigned char)data[i] << 16 | (unsigned char)data[i + 1] << 8 |
		    (unsigned char)data[i + 2];
		out += alphabet[v >> 18 & 63];
		out += alphabet[v >> 12 & 63];
		out += alphabet[v >> 6 & 63];
		out += alphabet[v & 63];
	}
	if (i + 1 == data.size()) {
		unsigned v = (unsigned char)data[i] << 16;
		out += alphabet[v >> 18 & 63];
		out += alphabet[v >> 12 & 63];
		out += "==";
	} else if (i + 2 == data.size()) {
		unsigned v = (unsigned char)data[i] << 16 | (unsigned char)data[i + 1] << 8;
		out += alphabet[v >> 18 & 63];
		out += alphabet[v >> 12 & 63];
		out += alphabet[v >> 6 & 63];
		out += '=';
	}
	return out;
}

std::string plain_response(const std::string& authc, const std::string& password, const std::string& authz) {
	return base64(authz + std::string(1, '\0') + authc + std::string(1, '\0') + password);
}

bool set_password(const TernDaemon& daemon, const std::string& account, const std::string& password,
                  std::string* output) {
	std::string dir = make_temp_dir("tern-pw-");
	std::string input = dir + "/password";
	write_file(input, password + "\n");
	// The shell only redirects stdin; every value is a positional parameter.
	RunResult r = run_command({"/bin/sh", "-c", "exec \"$0\" -c \"$1\" passwd \"$2\" < \"$3\"",
	                           repo_root() + "/src/ternctl", daemon.config_path(), account, input},
	                          20000);
	remove_tree(dir);
	if (output) *output = r.output;
	return r.exit_code == 0;
}

}  // namespace tern::testing
