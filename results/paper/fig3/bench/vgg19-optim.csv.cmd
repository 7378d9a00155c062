bench memory --model vgg19_bn --shape cifar --num-classes 100 --batch 32 --optimizer sgd,nesterov,adam --steps 1 --threads 2 --csv results/paper/fig3/bench/vgg19-optim.csv
