/* sk cert: an installation's certificate through skd (register, dns-01
 * values, ACME issue and renewal); the state directory: cert_state.h. */
#ifndef SK_CERT_H
#define SK_CERT_H

int sk_cert_register(int argc, char **argv);
int sk_cert_challenge_set(int argc, char **argv);
int sk_cert_challenge_delete(int argc, char **argv);
int sk_cert_issue(int argc, char **argv);
int sk_cert_renew(int argc, char **argv);
int sk_cert_revoke(int argc, char **argv);
int sk_cert_rollover(int argc, char **argv);

#endif
