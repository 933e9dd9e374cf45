export declare const MINIMUM_NODE: string;
export declare function nodeIsRecentEnough(version: string): boolean;
export declare function requireNode(what: string, advice: string): void;
