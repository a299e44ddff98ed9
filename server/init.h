#ifndef SKD_INIT_H
#define SKD_INIT_H

/* skd init -c FILE [--public-key PEM]; returns the exit code. */
int cmd_init(int argc, char **argv);

#endif
