/*
** sql_qcow2.h - the qcow2_* SQL functions (sql_qcow2.c).
**
** Place in the one-way graph (see schema.h): uses qcow2.c and schema.c;
** used by djinn.c only.
*/
#ifndef DJINN_SQL_QCOW2_H
#define DJINN_SQL_QCOW2_H

#include <sqlite3.h>

/* Register (drop 0) or remove (drop 1) qcow2_validate, qcow2_check and
** qcow2_info. */
int reg_qcow2_functions(sqlite3 *db, int drop);

#endif /* DJINN_SQL_QCOW2_H */
