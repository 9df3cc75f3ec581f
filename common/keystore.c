#include "common/keystore.h"
