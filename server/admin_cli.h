#ifndef SKD_ADMIN_CLI_H
#define SKD_ADMIN_CLI_H

/* skd tenant add ...; skd instance add ...: return the exit code. */
int cmd_tenant(int argc, char **argv);
int cmd_instance(int argc, char **argv);

#endif
