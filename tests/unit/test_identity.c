/* The identity-document verifier, with a signer certificate and detached
 * PKCS#7 signatures made by the openssl command line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../common/base64.h"
#include "../../keys/identity.h"

static char dir[64];
static identity_verifier_t v;

/* Runs a shell command in the test's directory. */
static int sh(const char *script) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && %s", dir, script);
    return system(cmd);
}

/* The base64 of a file's bytes. */
static char *b64_file(const char *name) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char data[8192];
    size_t n = fread(data, 1, sizeof data, f);
    fclose(f);
    buf_t out;
    buf_init(&out, 0);
    base64_encode(data, n, &out);
    buf_append(&out, "", 1);
    return out.data;
}

static int setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/skd-identity-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    /* two signers: the configured one and an impostor */
    if (sh("for n in signer other; do openssl req -x509 -newkey rsa:2048 -nodes -keyout $n.key "
           "-out $n.pem -subj /CN=$n -days 2 2>/dev/null || exit 1; done") != 0)
        return -1;
    if (sh("printf '{\"accountId\":\"111122223333\",\"instanceId\":\"i-0123456789abcdef0\","
           "\"privateIp\":\"127.0.0.1\",\"region\":\"eu-west-1\"}' > doc.json && "
           "openssl smime -sign -binary -noattr -outform DER -signer signer.pem -inkey signer.key "
           "-in doc.json -out doc.p7 && "
           "openssl smime -sign -binary -noattr -outform DER -signer other.pem -inkey other.key "
           "-in doc.json -out other.p7 && "
           "sed 's/127.0.0.1/127.0.0.2/' doc.json > tampered.json") != 0)
        return -1;
    char pem[128], err[256];
    snprintf(pem, sizeof pem, "%s/signer.pem", dir);
    return identity_load(&v, pem, err, sizeof err);
}

static int teardown(void **state) {
    (void)state;
    identity_free(&v);
    return sh("rm -rf \"$PWD\"");
}

static void check(const char *doc_file, const char *sig_file, const char *instance, const char *ip,
                  const char *account, int want, const char *reason_part) {
    char *doc = doc_file ? b64_file(doc_file) : NULL, *sig = sig_file ? b64_file(sig_file) : NULL;
    identity_claim_t claim = {instance, ip, account};
    char reason[160] = "";
    int rc = identity_verify(&v, doc, sig, &claim, reason, sizeof reason);
    if (rc != want || (reason_part && !strstr(reason, reason_part)))
        fail_msg("%s/%s: want %d (%s), got %d (%s)", doc_file, sig_file, want, reason_part, rc, reason);
    free(doc);
    free(sig);
}

static void accepts_the_right_instance(void **state) {
    (void)state;
    check("doc.json", "doc.p7", "i-0123456789abcdef0", "127.0.0.1", "111122223333", 0, NULL);
}

static void refuses(void **state) {
    (void)state;
    const char *i = "i-0123456789abcdef0", *a = "111122223333";
    check("doc.json", "doc.p7", "i-0fedcba9876543210", "127.0.0.1", a, -1, "another instance");
    check("doc.json", "doc.p7", i, "127.0.0.2", a, -1, "another address");
    check("doc.json", "doc.p7", i, "127.0.0.1", "999999999999", -1, "another account");
    check("doc.json", "other.p7", i, "127.0.0.1", a, -1, "does not verify");
    check("tampered.json", "doc.p7", i, "127.0.0.2", a, -1, "does not verify");
    check(NULL, "doc.p7", i, "127.0.0.1", a, -1, "no identity document");
    identity_claim_t claim = {i, "127.0.0.1", a};
    char reason[160];
    assert_int_equal(identity_verify(&v, "not base64!", "AAAA", &claim, reason, sizeof reason), -1);
    assert_int_equal(identity_verify(&v, "e30=", "AAAA", &claim, reason, sizeof reason), -1); /* "{}" */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_the_right_instance),
        cmocka_unit_test(refuses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
