#include "common/eckey.h"
