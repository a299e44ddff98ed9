/* The instance agent's commands (sk/main.c's table). Each gets argv with
 * argv[0] its full name ("sk prep-dev"), answers --help, and returns the
 * original agent's exit codes: 0 success, 1 operational failure, 2 usage,
 * 4 wrong device state, 5 not root. */
#ifndef SK_AGENT_COMMANDS_H
#define SK_AGENT_COMMANDS_H

int sk_prep_dev(int argc, char **argv);
int sk_mount(int argc, char **argv);
int sk_check(int argc, char **argv);
int sk_umount(int argc, char **argv);
int sk_takeown(int argc, char **argv);
int sk_automount(int argc, char **argv);
int sk_chk_pubkey(int argc, char **argv);

#endif
