#include "daemon/ledger.h"
