#include "daemon/content.h"
