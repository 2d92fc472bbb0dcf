require('../restore.js');
