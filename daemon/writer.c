#include "daemon/writer.h"
