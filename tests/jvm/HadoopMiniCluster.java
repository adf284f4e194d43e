// HDFS (1 NameNode + 1 DataNode) and YARN (1 ResourceManager + 1 NodeManager) in one JVM,
// every port chosen by the system on localhost. Run as a single source file:
//
//   java -cp '.cache/hadoop/*' tests/jvm/HadoopMiniCluster.java BASE_DIR CONF_DIR [key=value ...]
//
// BASE_DIR holds the cluster's data and the NodeManager's containers; key=value pairs are
// set on the cluster's configuration. Once a file has been written to HDFS and the
// NodeManager has registered, the client configuration (core-, hdfs-, yarn-site.xml) is
// written to CONF_DIR, each file atomically. Runs until killed (stop by pid).
// The org.apache.hadoop.mapreduce.MiniHadoopClusterManager of the same jar cannot start
// YARN here: it needs the MapReduce application master, which the jar leaves out.

import java.io.File;
import java.io.FileOutputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.MiniYARNCluster;
import org.apache.hadoop.yarn.server.resourcemanager.ResourceManager;
import org.apache.hadoop.yarn.webapp.WebApp;

public class HadoopMiniCluster {
    static final String[] RM_KEYS = {
        "yarn.resourcemanager.address", "yarn.resourcemanager.scheduler.address",
        "yarn.resourcemanager.resource-tracker.address", "yarn.resourcemanager.admin.address",
        "yarn.resourcemanager.webapp.address",
    };

    public static void main(String[] args) {
        try {
            run(args);
        } catch (Throwable e) {  // a half-started cluster's threads would keep the JVM alive
            e.printStackTrace();
            System.exit(1);
        }
    }

    static void run(String[] args) throws Exception {
        File base = new File(args[0]).getAbsoluteFile();
        File confDir = new File(args[1]).getAbsoluteFile();
        Configuration conf = new YarnConfiguration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, new File(base, "hdfs").getPath());
        for (int i = 2; i < args.length; i++) {
            String[] kv = args[i].split("=", 2);
            conf.set(kv[0], kv[1]);
        }

        MiniDFSCluster dfs = new MiniDFSCluster.Builder(conf).numDataNodes(1).format(true).build();
        dfs.waitActive();
        FileSystem fs = dfs.getFileSystem();
        try (OutputStream out = fs.create(new Path("/tmp/minicluster-ready"), true)) {
            out.write("ok\n".getBytes("UTF-8"));  // proves a DataNode accepts blocks
        }
        conf.set("fs.defaultFS", fs.getUri().toString());

        // The NodeManager's work dirs go under the working directory's target/ folder.
        MiniYARNCluster yarn = new MiniYARNCluster("fusionrec", 1, 1, 1);
        yarn.init(conf);
        yarn.start();  // returns once the NodeManager has registered
        Configuration rm = yarn.getResourceManager().getConfig();

        // Clients use 127.0.0.1, where every server listens ("localhost" may also mean ::1).
        Configuration core = new Configuration(false);
        core.set("fs.defaultFS", "hdfs://127.0.0.1:" + dfs.getNameNodePort());
        Configuration hdfs = new Configuration(false);
        hdfs.set("dfs.replication", "1");
        hdfs.set("dfs.namenode.http-address", "127.0.0.1:" + dfs.getNameNode().getHttpAddress().getPort());
        Configuration site = new Configuration(false);
        for (String key : RM_KEYS) {
            site.set(key, "127.0.0.1:" + rm.getSocketAddr(key, "", 0).getPort());
        }
        // The web app's bound port: its configuration entry may still name another server's
        // (ResourceManager.getWebapp() is not public).
        java.lang.reflect.Method webapp = ResourceManager.class.getDeclaredMethod("getWebapp");
        webapp.setAccessible(true);
        site.set("yarn.resourcemanager.webapp.address",
                 "127.0.0.1:" + ((WebApp) webapp.invoke(yarn.getResourceManager())).port());
        confDir.mkdirs();
        write(hdfs, new File(confDir, "hdfs-site.xml"));
        write(site, new File(confDir, "yarn-site.xml"));
        write(core, new File(confDir, "core-site.xml"));  // last: its presence means ready
        System.out.println("ready: " + core.get("fs.defaultFS") + ", resource manager " + site.get(RM_KEYS[0]));
        System.out.flush();
        Thread.currentThread().join();
    }

    static void write(Configuration conf, File target) throws Exception {
        File tmp = new File(target.getPath() + ".tmp");
        try (OutputStream out = new FileOutputStream(tmp)) {
            conf.writeXml(out);
        }
        Files.move(tmp.toPath(), target.toPath(), StandardCopyOption.ATOMIC_MOVE);
    }
}
