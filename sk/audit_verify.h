/* "sk audit verify AUDIT-DIR --pubkey PEM": the audit verifier's command line. */
#ifndef SK_AUDIT_VERIFY_H
#define SK_AUDIT_VERIFY_H

/* argv[0] is the command's name ("sk audit verify"); returns the exit code:
 * 0 every record verifies, 1 a record does not or AUDIT-DIR/PEM is
 * unreadable, 2 usage error. */
int sk_audit_verify(int argc, char **argv);

#endif
