require('../save.js');
